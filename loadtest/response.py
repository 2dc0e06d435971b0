"""A lean reader for the switch's responses: only the fields the generator looks at.

Decoding a whole response with pyiso8583 (and the dialect's checks) costs the
generator about as much as building a request did, inside the measured
window. The generator only needs the MTI, what pairs a response with its
request (DE 7, 11, 32, 41), the response code (DE 39), the bill data (DE 48:
receipt number, amount due) and whether a MAC field (DE 64/128) is there.
So this walks the bitmap with the dialect's layouts, slices those fields out
and skips the rest.

Anything it does not expect (a tertiary bitmap, a bad length, bytes left
over, non-ASCII text) returns None, and the caller falls back to the full
``decode_message``, which counts the message as undecodable if it is. The
MAC of every response is still checked over its raw bytes, so nothing the
reader skips can pass unnoticed as tampered.
"""

from __future__ import annotations

from iso.dialect import SPEC

WANTED = frozenset({"7", "11", "32", "37", "39", "41", "48", "64", "70", "128"})
_BINARY_ENC = "b"


def _layout() -> tuple[tuple[int, int, bool, str | None], ...]:
    """Per field number 0..128: (length digits, maximum length, binary, key if wanted)."""
    rows: list[tuple[int, int, bool, str | None]] = [(0, 0, False, None)]
    for number in range(1, 129):
        spec = SPEC[str(number)]
        key = str(number) if str(number) in WANTED else None
        binary = spec["data_enc"] == _BINARY_ENC
        rows.append((spec["len_type"], spec["max_len"], binary, key))
    return tuple(rows)


_LAYOUT = _layout()
# Bit positions (1..8, MSB first) set in each byte value: the bitmap walk skips absent fields.
_BITS = tuple(tuple(i + 1 for i in range(8) if value & (0x80 >> i)) for value in range(256))


def read_response(raw: bytes) -> dict[str, str] | None:
    """The wanted fields of one message (MTI onwards), or None to decode it fully instead."""
    try:
        return _read(raw)
    except (ValueError, IndexError, UnicodeDecodeError):
        return None


def _read(raw: bytes) -> dict[str, str] | None:
    fields = {"t": raw[:4].decode("ascii")}
    if len(fields["t"]) != 4:
        return None
    bitmap = raw[4:12]
    pos = 12
    if bitmap and bitmap[0] & 0x80:
        bitmap += raw[12:20]
        pos = 20
    if len(bitmap) not in (8, 16):
        return None
    end_of_message = len(raw)
    for index, byte in enumerate(bitmap):
        for bit in _BITS[byte]:
            number = index * 8 + bit
            if number == 1:
                continue  # the secondary bitmap, read above
            if number == 65:
                return None  # a tertiary bitmap: the dialect refuses it
            digits, max_len, binary, key = _LAYOUT[number]
            if digits:
                length_text = raw[pos : pos + digits]
                if len(length_text) != digits or not length_text.isdigit():
                    return None
                length = int(length_text)
                if length > max_len:
                    return None
                pos += digits
            else:
                length = max_len
            end = pos + length
            if end > end_of_message:
                return None
            if key is not None:
                value = raw[pos:end]
                fields[key] = value.hex().upper() if binary else value.decode("ascii")
            pos = end
    return fields if pos == end_of_message else None


def is_response(fields: dict[str, str]) -> bool:
    """Responses have an odd third MTI digit (0210, 0410, 0810); requests to us even."""
    mti = fields["t"]
    return mti[2:3].isdigit() and int(mti[2]) % 2 == 1
