"""Field kinds of payShield host commands: one decoder and one encoder for each layout.

A layout is a tuple of fields, declared once (in ``layouts.py``) and used both
ways: the simulator decodes requests and encodes responses, the client
encodes requests and decodes responses. A message is handled as text decoded
with Latin-1, so every byte maps to one character and binary MAC data passes
through unchanged.

Every problem with the text raises ``InvalidInput`` (error 15) naming the
field, never quoting its value (it may be a PIN block or an account).

Both ends run these for every command, so the checks are string methods
(``lstrip`` of the allowed characters leaves nothing) rather than sets built
per value, and fields read the text by position without a copy of the rest.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from hsm_sim.interface import InvalidInput

Fields = dict[str, str]

# Allowed characters, as strings: ``value.lstrip(chars)`` is empty when all are allowed.
HEX = string.hexdigits
DIGITS = string.digits
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))

# Key scheme letter -> hex characters that follow it; a key starting with a
# hex digit is a single-length key of 16 hex (or a pair of them: ``pair=True``).
KEY_SCHEME_WIDTHS = {"Z": 16, "U": 32, "X": 32, "T": 48, "Y": 48}


def key_length(value: str) -> int:
    """Clear length in bytes of a key written as on the wire (scheme letter or not)."""
    return KEY_SCHEME_WIDTHS.get(value[:1].upper(), len(value)) // 2


class Cursor:
    """The unread rest of a message."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def take(self, n: int, name: str) -> str:
        """The next ``n`` characters; a message that ends early is invalid input."""
        start = self.pos
        end = start + n
        if n < 0 or end > len(self.text):
            raise InvalidInput(f"{name}: message too short")
        self.pos = end
        return self.text[start:end]

    def rest(self) -> int:
        return len(self.text) - self.pos


class Field(Protocol):
    """One part of a layout: reads itself from a cursor, writes itself from values."""

    def decode(self, cursor: Cursor, out: Fields) -> None: ...

    def encode(self, values: Mapping[str, str]) -> str: ...


def _check(name: str, value: str, charset: str) -> str:
    if value.lstrip(charset):
        raise InvalidInput(f"{name}: unexpected characters")
    return value


def _value(values: Mapping[str, str], name: str) -> str:
    try:
        return values[name]
    except KeyError:
        raise InvalidInput(f"{name}: missing") from None


@dataclass(frozen=True)
class Fixed:
    """A fixed-width field of hex, digits or printable characters."""

    name: str
    width: int
    charset: str = PRINTABLE

    def decode(self, cursor: Cursor, out: Fields) -> None:
        value = cursor.take(self.width, self.name)
        if value.lstrip(self.charset):
            raise InvalidInput(f"{self.name}: unexpected characters")
        out[self.name] = value

    def encode(self, values: Mapping[str, str]) -> str:
        value = values.get(self.name)
        if value is None:
            raise InvalidInput(f"{self.name}: missing")
        if value.lstrip(self.charset):
            raise InvalidInput(f"{self.name}: unexpected characters")
        if len(value) != self.width:
            raise InvalidInput(f"{self.name}: must be {self.width} characters")
        return value


def Hex(name: str, width: int) -> Fixed:
    return Fixed(name, width, HEX)


def Digits(name: str, width: int) -> Fixed:
    return Fixed(name, width, DIGITS)


def Text(name: str, width: int) -> Fixed:
    return Fixed(name, width, PRINTABLE)


@dataclass(frozen=True)
class Key:
    """A key: 16 hex (32 for a ``pair`` of single keys), or a scheme letter and its hex."""

    name: str
    pair: bool = False

    def _width(self, first: str) -> int:
        if first in KEY_SCHEME_WIDTHS:
            return 1 + KEY_SCHEME_WIDTHS[first]
        if len(first) == 1 and first in HEX:
            return 32 if self.pair else 16
        raise InvalidInput(f"{self.name}: unknown key scheme")

    def decode(self, cursor: Cursor, out: Fields) -> None:
        value = cursor.take(self._width(cursor.peek()), self.name)
        _check(self.name, value[1:], HEX)
        out[self.name] = value

    def encode(self, values: Mapping[str, str]) -> str:
        value = _value(values, self.name)
        if not value or len(value) != self._width(value[0]):
            raise InvalidInput(f"{self.name}: wrong length for its scheme")
        _check(self.name, value[1:], HEX)
        return value


@dataclass(frozen=True)
class Until:
    """Digits up to (not including) a delimiter, e.g. a PAN before ``;``."""

    name: str
    delimiter: str
    max_width: int

    def decode(self, cursor: Cursor, out: Fields) -> None:
        end = cursor.text.find(self.delimiter, cursor.pos)
        width = (end if end >= 0 else len(cursor.text)) - cursor.pos
        if not 0 < width <= self.max_width:
            raise InvalidInput(f"{self.name}: missing or too long")
        out[self.name] = _check(self.name, cursor.take(width, self.name), DIGITS)

    def encode(self, values: Mapping[str, str]) -> str:
        value = _check(self.name, _value(values, self.name), DIGITS)
        if not 0 < len(value) <= self.max_width:
            raise InvalidInput(f"{self.name}: missing or too long")
        return value


@dataclass(frozen=True)
class Data:
    """A message: its length in 4 hex, then that many characters (bytes)."""

    name: str

    def decode(self, cursor: Cursor, out: Fields) -> None:
        length = int(_check(self.name, cursor.take(4, self.name), HEX), 16)
        out[self.name] = cursor.take(length, self.name)

    def encode(self, values: Mapping[str, str]) -> str:
        value = _value(values, self.name)
        if len(value) > 0xFFFF:
            raise InvalidInput(f"{self.name}: longer than 65535")
        return f"{len(value):04X}{value}"


@dataclass(frozen=True)
class Counted:
    """As many keys as an earlier digit field says (A4's components): ``name1``..``nameN``."""

    count: str
    name: str

    def _keys(self, values: Mapping[str, str]) -> list[Key]:
        count = values.get(self.count, "")
        if not count.isdigit():
            raise InvalidInput(f"{self.count}: missing")
        return [Key(f"{self.name}{i}") for i in range(1, int(count) + 1)]

    def decode(self, cursor: Cursor, out: Fields) -> None:
        for key in self._keys(out):
            key.decode(cursor, out)

    def encode(self, values: Mapping[str, str]) -> str:
        return "".join(key.encode(values) for key in self._keys(values))


@dataclass(frozen=True)
class Literal:
    """A fixed delimiter such as ``;``."""

    text: str

    def decode(self, cursor: Cursor, out: Fields) -> None:
        if cursor.take(len(self.text), f"delimiter {self.text}") != self.text:
            raise InvalidInput(f"delimiter {self.text} expected")

    def encode(self, values: Mapping[str, str]) -> str:
        return self.text


@dataclass(frozen=True)
class Delimited:
    """Optional fields introduced by ``delimiter``, written when ``written_when`` has a value."""

    delimiter: str
    fields: tuple[Field, ...]
    written_when: str

    def decode(self, cursor: Cursor, out: Fields) -> None:
        if cursor.peek(len(self.delimiter)) == self.delimiter:
            cursor.take(len(self.delimiter), self.delimiter)
            decode_fields(self.fields, cursor, out)

    def encode(self, values: Mapping[str, str]) -> str:
        if self.written_when not in values:
            return ""
        return self.delimiter + encode_fields(self.fields, values)


@dataclass(frozen=True)
class When:
    """Fields present only when an earlier field (or a request field) has one of ``values``.

    An absent field counts as the empty string, so ``""`` among the values
    names the default of an optional field.
    """

    name: str
    values: tuple[str, ...]
    fields: tuple[Field, ...]

    def decode(self, cursor: Cursor, out: Fields) -> None:
        if out.get(self.name, "") in self.values:
            decode_fields(self.fields, cursor, out)

    def encode(self, values: Mapping[str, str]) -> str:
        if values.get(self.name, "") not in self.values:
            return ""
        return encode_fields(self.fields, values)


Layout = tuple[Field, ...]


def decode_fields(layout: Layout, cursor: Cursor, out: Fields) -> None:
    for field in layout:
        field.decode(cursor, out)


def encode_fields(layout: Layout, values: Mapping[str, str]) -> str:
    return "".join([field.encode(values) for field in layout])


def decode(layout: Layout, text: str, context: Mapping[str, str] | None = None) -> Fields:
    """The fields of ``text``; ``context`` (the request's fields) decides ``When`` groups.

    Characters left over after the layout are invalid input: a command we
    would only half understand must not be executed.
    """
    out: Fields = dict(context or {})
    cursor = Cursor(text)
    decode_fields(layout, cursor, out)
    if cursor.rest():
        raise InvalidInput("unexpected data after the last field")
    return out


def encode(layout: Layout, values: Mapping[str, str]) -> str:
    return encode_fields(layout, values)
