"""Reading a held biller's debt list (billers.md, "Offline biller files"), streamed.

The file comes from outside and may be hostile: it is parsed by defusedxml's
expat parser with DTDs, entity declarations and external references refused
(billion laughs, XXE), fed in chunks to a target that keeps no tree, so memory
stays bounded whatever the file's size. Every element is checked as it
arrives; the first problem stops the reading with its line and reason
(``DebtFileError``), and the caller's transaction then applies nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, NamedTuple
from xml.etree.ElementTree import ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from iso.currency import CURRENCIES

CHUNK = 1 << 16  # bytes fed to the parser at a time
HEADER_WITHIN = 1 << 16  # the <debts> element must start within the first 64 KiB
MODES = ("full", "delta")
MAX_AMOUNT = 10**15  # minor units; BIGINT holds more, no bill is this large

_CODE = re.compile(r"[A-Za-z0-9]{1,8}")
_ACCOUNT = re.compile(r"[A-Za-z0-9._/-]{1,32}")
_PERIOD = re.compile(r"\d{4}(0[1-9]|1[0-2])")
_AMOUNT = re.compile(r"\d{1,16}")
_INVOICE = re.compile(r"[A-Za-z0-9._/-]{1,32}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class DebtFileError(ValueError):
    """The file is not a valid debt list: where (line) and why, for one line of output."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Header:
    """The ``<debts>`` element: whose list, in which currency, how to apply it, when made."""

    biller: str
    currency: str
    mode: str
    generated: datetime  # aware, UTC


class Debt(NamedTuple):
    """One ``<debt>``: ``line`` is where it starts in the file (for errors found later).
    A tuple: a million of them are made per import, and a frozen dataclass costs more."""

    line: int
    account: str
    name: str
    amount: int
    period: str
    invoice: str | None
    due: date | None


def read_header(chunks: Iterable[bytes]) -> Header:
    """The header alone, from the first ``HEADER_WITHIN`` bytes (what the signature
    check needs to know whose key to use, before the whole file is trusted)."""
    reader = _Reader()
    seen = 0
    for chunk in chunks:
        reader.feed(chunk)
        if reader.header is not None:
            return reader.header
        seen += len(chunk)
        if seen >= HEADER_WITHIN:
            raise DebtFileError(reader.line(), f"no <debts> element in the first {seen} bytes")
    reader.close()
    raise DebtFileError(reader.line(), "no <debts> element")  # close() raised first, normally


def read_debts(chunks: Iterable[bytes]) -> tuple[Header, Iterator[Debt]]:
    """The header and an iterator of the debts, read as the iterator is consumed; the
    iterator raises ``DebtFileError`` at the first problem, including at the very end
    (an unclosed element, text after the root)."""
    reader = _Reader()
    source = iter(chunks)
    for chunk in source:
        reader.feed(chunk)
        if reader.header is not None:
            break
    else:
        reader.close()
    if reader.header is None:
        raise DebtFileError(reader.line(), "no <debts> element")
    return reader.header, _debts(reader, source)


def _debts(reader: _Reader, rest: Iterator[bytes]) -> Iterator[Debt]:
    yield from reader.take()
    for chunk in rest:
        reader.feed(chunk)
        yield from reader.take()
    reader.close()
    yield from reader.take()


class _Reader:
    """A defused expat parser and the target it calls: no tree, only checked values."""

    def __init__(self) -> None:
        self.header: Header | None = None
        self.pending: list[Debt] = []
        target = _Target(self)
        self._parser = DefusedXMLParser(
            target=target, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
        # defusedxml's guards stay on the expat parser (DOCTYPE, entity declarations,
        # external references); the elements go straight to the target, as a dict of
        # attributes, without ElementTree's per-element renaming: a third of the time.
        self._expat = expat = self._parser.parser
        target.expat = expat
        expat.ordered_attributes = 0
        expat.StartElementHandler = target.start
        expat.EndElementHandler = target.end
        expat.CharacterDataHandler = target.data

    def line(self) -> int:
        return int(self._expat.CurrentLineNumber)

    def feed(self, chunk: bytes) -> None:
        self._guard(self._parser.feed, chunk)

    def close(self) -> None:
        self._guard(self._parser.close)
        if self.header is None:
            raise DebtFileError(self.line(), "no <debts> element")

    def take(self) -> list[Debt]:
        taken, self.pending = self.pending, []
        return taken

    def _guard(self, call: Any, *args: Any) -> None:
        """Parser failures as ``DebtFileError`` with the line they were found on."""
        try:
            call(*args)
        except DebtFileError:
            raise
        except ParseError as exc:
            line = exc.position[0] if exc.position else self.line()
            raise DebtFileError(line, f"not well-formed XML: {_expat_reason(exc)}") from None
        except DefusedXmlException as exc:
            raise DebtFileError(self.line(), _defused_reason(exc)) from None


class _Target:
    """What the parser calls, element by element (the interface of
    ``xml.etree.ElementTree.XMLParser``'s target); builds no tree."""

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        self._depth = 0
        self.expat: Any = None

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        line = self.expat.CurrentLineNumber
        if self._depth == 2 and tag == "debt":
            self._reader.pending.append(_debt(line, attrib))
        elif self._depth == 1:
            self._reader.header = _header(line, tag, attrib)
        else:
            raise DebtFileError(line, f"unexpected element <{tag}> inside <debts>")

    def end(self, tag: str) -> None:
        self._depth -= 1

    def data(self, text: str) -> None:
        if text.strip():
            raise DebtFileError(self._reader.line(), f"unexpected text {text.strip()[:20]!r}")

    def close(self) -> None:
        return None


def _expat_reason(exc: ParseError) -> str:
    """expat's message without its own "line N, column M" (the line is said first)."""
    return re.sub(r":\s*line \d+, column \d+$", "", str(exc))


def _defused_reason(exc: DefusedXmlException) -> str:
    name = type(exc).__name__
    return {
        "DTDForbidden": "a DOCTYPE (DTD) is not allowed in a debt file",
        "EntitiesForbidden": "entity declarations are not allowed in a debt file",
        "ExternalReferenceForbidden": "external references are not allowed in a debt file",
    }.get(name, f"refused by the XML guard: {name}")


# -- the elements' attributes ---------------------------------------------------------


def _header(line: int, tag: str, a: dict[str, str]) -> Header:
    if tag != "debts":
        raise DebtFileError(line, f"the root element is <{tag}>, not <debts>")
    _only(line, "debts", a, {"biller", "currency", "mode", "generated"})
    biller = _required(line, a, "biller")
    if not _CODE.fullmatch(biller):
        raise DebtFileError(line, f"biller={biller!r}: 1 to 8 letters and digits")
    currency = _required(line, a, "currency")
    if currency not in CURRENCIES:
        raise DebtFileError(line, f"currency={currency!r}: an ISO 4217 numeric code such as 944")
    mode = _required(line, a, "mode")
    if mode not in MODES:
        raise DebtFileError(line, f"mode={mode!r}: full or delta")
    return Header(biller, currency, mode, _generated(line, _required(line, a, "generated")))


def _generated(line: int, text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        when = None
    if when is None or "T" not in text or when.tzinfo is None:
        raise DebtFileError(
            line, f"generated={text!r}: an RFC 3339 time with its offset, e.g. 2026-11-01T00:00:00Z"
        )
    return when.astimezone(UTC)


_DEBT_ATTRIBUTES = frozenset({"account", "name", "amount", "period", "invoice", "due"})
# The common case in one match: account, amount, period, invoice, due (each may be empty
# here: the slow path says which one is wrong).
_FAST = re.compile(
    r"[A-Za-z0-9._/-]{1,32}\x00\d{1,16}\x00\d{4}(?:0[1-9]|1[0-2])\x00"
    r"(?:[A-Za-z0-9._/-]{1,32})?\x00(?:\d{4}-\d{2}-\d{2})?"
)


def _debt(line: int, a: dict[str, str]) -> Debt:
    """One checked debt: a single pattern match when all is well (a million per file),
    the attribute-by-attribute checks to say what is wrong when it is not."""
    get = a.get
    account, name, amount, period = get("account"), get("name"), get("amount"), get("period")
    invoice, due = get("invoice"), get("due")
    if (
        account is not None
        and name is not None
        and amount is not None
        and period is not None
        and invoice != ""
        and due != ""
        and _DEBT_ATTRIBUTES.issuperset(a)
        and _FAST.fullmatch(f"{account}\x00{amount}\x00{period}\x00{invoice or ''}\x00{due or ''}")
        and int(amount) <= MAX_AMOUNT
    ):
        name = " ".join(name.split())
        if 0 < len(name) <= 100:
            return Debt(line, account, name, int(amount), period, invoice, _due(line, due))
    return _checked_debt(line, a)


def _checked_debt(line: int, a: dict[str, str]) -> Debt:
    _only(line, "debt", a, {"account", "name", "amount", "period", "invoice", "due"})
    account = _required(line, a, "account")
    if not _ACCOUNT.fullmatch(account):
        raise DebtFileError(line, f"account={account!r}: 1 to 32 letters, digits or ._/-")
    name = " ".join(_required(line, a, "name").split())
    if not name or len(name) > 100:
        raise DebtFileError(line, "name: 1 to 100 characters")
    amount = _required(line, a, "amount")
    if not _AMOUNT.fullmatch(amount) or int(amount) > MAX_AMOUNT:
        raise DebtFileError(line, f"amount={amount!r}: whole minor units, 0 to {MAX_AMOUNT}")
    period = _required(line, a, "period")
    if not _PERIOD.fullmatch(period):
        raise DebtFileError(line, f"period={period!r}: YYYYMM")
    invoice = a.get("invoice")
    if invoice is not None and not _INVOICE.fullmatch(invoice):
        raise DebtFileError(line, f"invoice={invoice!r}: 1 to 32 letters, digits or ._/-")
    return Debt(line, account, name, int(amount), period, invoice, _due(line, a.get("due")))


def _due(line: int, text: str | None) -> date | None:
    if text is None:
        return None
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise DebtFileError(line, f"due={text!r}: a date YYYY-MM-DD")


def _required(line: int, a: dict[str, str], name: str) -> str:
    value = a.get(name)
    if value is None:
        raise DebtFileError(line, f"{name}= is missing")
    return value


def _only(line: int, tag: str, a: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(a) - allowed)
    if unknown:
        raise DebtFileError(line, f"<{tag}> has an unknown attribute {unknown[0]}=")


def chunks_of(data: Any, size: int = CHUNK) -> Iterator[bytes]:
    """``data`` (bytes or an mmap) in pieces of ``size`` bytes, copied one at a time: only
    one chunk of an mmapped file is in Python's memory at once."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
