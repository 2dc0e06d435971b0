"""``PayShieldClient``: the HSM interface over TCP, to our simulator or a real payShield.

A small pool of connections (default 2) is opened on first use and
re-opened by the next call after one is lost. Every command goes out with a
header unique among those in flight on its connection, so any number may be
in flight and answers are matched by header, in whatever order they come,
and checked for their command's response code.

Each call has one time limit (default 2 s) covering connection and answer;
past it the call fails with ``HsmTimeout`` and its connection is dropped
(the calls still in flight on it fail with ``HsmUnavailable``): its answer
may still come, and a header is never used again while one may.
No connection at all gives ``HsmUnavailable``. Error codes come back as the
interface's typed errors; verification failure (01) is ``False``.

The switch makes three calls per payment, so a call is kept cheap: one
Deferred, one callback that turns the answer into the result, and no timer
of its own. Every call has the same time limit, so deadlines expire in the
order calls were sent: one timer per client, armed for the oldest call still
waiting, enforces them all (``_Deadlines``).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

import structlog
from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.protocols.basic import Int16StringReceiver
from twisted.python.failure import Failure

from hsm_sim.codec import Fields, decode, encode, key_length
from hsm_sim.interface import (
    CVKS,
    IMPORTABLE,
    KEKS,
    MAC_KEYS,
    PIN_DESTINATIONS,
    PIN_KEYS,
    PVKS,
    ZMKS,
    Diagnostics,
    GeneratedKey,
    HsmBadResponse,
    HsmFailure,
    HsmTimeout,
    HsmUnavailable,
    IbmParameters,
    InvalidInput,
    KeyUnderLmk,
    MacAlgorithm,
    Padding,
    PinBlock,
    TranslatedPin,
    VerificationFailed,
    check_key_type,
    error_for,
)
from hsm_sim.layouts import (
    BU_KEY_TYPES,
    COMMANDS,
    KEK_FLAGS,
    KEY_LENGTH_FLAGS,
    MAC_SIZES,
    SINGLE_BLOCK_MODE,
    TRANSLATE_COMMANDS,
    VERIFY_IBM_COMMANDS,
    VERIFY_PVV_COMMANDS,
    response_code,
)
from hsm_sim.software import account_number

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_PORT = 1500
BINARY_INPUT = "0"  # M6/M8 input format: the message as bytes


def _reverse(table: Mapping[str, Any]) -> dict[Any, str]:
    return {value: code for code, value in table.items()}


# The wire codes of values the interface passes as types or lengths.
_KEK_FLAG_OF = _reverse(KEK_FLAGS)
_BU_CODE_OF = _reverse(BU_KEY_TYPES)
_LENGTH_FLAG_OF = _reverse(KEY_LENGTH_FLAGS)
_MAC_SIZE_OF = _reverse(MAC_SIZES)


def parse_url(url: str) -> tuple[str, int]:
    """Host and port of ``tcp://host:port`` (port 1500 when left out)."""
    parts = urlsplit(url)
    if parts.scheme != "tcp" or not parts.hostname:
        raise ValueError(f"HSM URL must look like tcp://host:1500, not {url!r}")
    return parts.hostname, parts.port or DEFAULT_PORT


def _code(table: Mapping[Any, str], value: Any, name: str) -> str:
    """A wire code for ``value``; one the protocol cannot say is invalid input."""
    try:
        return table[value]
    except KeyError:
        raise InvalidInput(f"{name}: not supported") from None


def _deferred(method: Callable[P, Deferred[T]]) -> Callable[P, Deferred[T]]:
    """Checks that fail before anything is sent fail the Deferred, never the caller."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
        try:
            return method(*args, **kwargs)
        except HsmFailure:
            return fail()

    return wrapper


def _timed_out(result: Any, timeout: float) -> Any:
    raise HsmTimeout(f"no answer from the HSM within {timeout} s")


class HostConnection(Int16StringReceiver):
    """One connection to the HSM: requests out with fresh headers, answers matched back.

    A header is in use from its request until its answer. A call that ends
    without its answer (timed out, cancelled) leaves the connection: the
    answer may still come, and its header would be free for a later call to
    take. So the connection is dropped (``drop``) and the stream, whose
    position is then unknown, is never read again. An answer is its call's
    only if it carries the call's header and the response code of its
    command (M8 -> M9); anything else is a protocol error that fails the
    call and drops the connection.
    """

    def __init__(self, header_length: int, on_lost: Callable[[HostConnection], None]) -> None:
        self._header_length = header_length
        self._on_lost = on_lost
        self._pending: dict[str, tuple[str, Deferred[str]]] = {}  # header -> (response code, d)
        self._next = 0
        self._dropped = False
        self.lost: Deferred[None] = Deferred()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def _header(self) -> str:
        """The next header not in flight here (headers are decimal, zero-padded)."""
        space = 10**self._header_length
        if len(self._pending) >= space:
            raise HsmUnavailable("every header is in flight on this connection")
        while True:
            header = f"{self._next % space:0{self._header_length}d}"
            self._next += 1
            if header not in self._pending:
                return header

    def request(self, command: str) -> tuple[str, Deferred[str]]:
        """The header and the answer (after the header) of ``command``; cancelling the
        Deferred gives the call up, which drops the connection."""
        if self._dropped:
            raise HsmUnavailable("connection to the HSM dropped")
        header = self._header()

        def give_up(_: Deferred[str]) -> None:
            self._pending.pop(header, None)
            self.drop("a call was given up before its answer")

        d: Deferred[str] = Deferred(give_up)
        self._pending[header] = (response_code(command[:2]), d)
        self.sendString((header + command).encode("latin-1"))
        return header, d

    def expire(self, header: str, d: Deferred[str], timeout: float) -> None:
        """Fail the request ``d`` under ``header`` with ``HsmTimeout`` if it still waits,
        and drop the connection: its answer may yet come."""
        entry = self._pending.get(header)
        if entry is not None and entry[1] is d:
            del self._pending[header]
            self.drop(f"no answer within {timeout} s", HsmTimeout)  # first: nothing new here
            d.errback(HsmTimeout(f"no answer from the HSM within {timeout} s"))

    def stringReceived(self, frame: bytes) -> None:
        if self._dropped:
            return  # frames read with the one that made us drop the connection
        text = frame.decode("latin-1")
        entry = self._pending.pop(text[: self._header_length], None)
        if entry is None:
            self.drop("an answer matches no request in flight")
            return
        expected, d = entry
        answer = text[self._header_length :]
        if answer[:2] != expected:
            self.drop("an answer with the wrong response code")
            d.errback(HsmBadResponse(f"answer {answer[:2]!r} to a request expecting {expected}"))
            return
        d.callback(answer)

    def drop(self, why: str, failure: type[HsmFailure] = HsmUnavailable) -> None:
        """Leave the pool and close at once; the calls still in flight here fail with
        ``failure`` (a timeout: they have waited as long, and no answer can come now)."""
        if self._dropped:
            return
        self._dropped = True
        log.warning("dropping the connection to the HSM", reason=why)
        self._on_lost(self)
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        pending, self._pending = self._pending, {}
        for _, d in pending.values():
            d.errback(failure(f"connection to the HSM dropped: {why}"))

    def connectionLost(self, reason: Any = None) -> None:
        self._dropped = True
        pending, self._pending = self._pending, {}
        for _, d in pending.values():
            d.errback(HsmUnavailable("connection to the HSM lost"))
        self._on_lost(self)
        self.lost.callback(None)


class _Deadlines:
    """The time limit of every call in flight, enforced by one timer.

    All calls share one time limit, so their deadlines come in the order they
    are added: a queue, with the timer armed for its oldest entry. Answered
    calls stay queued until the timer passes them (a check of ``called``),
    which costs less than taking each out when its answer comes.
    """

    def __init__(self, reactor: Any, timeout: float) -> None:
        self._reactor = reactor
        self._timeout = timeout
        self._queue: deque[tuple[float, HostConnection, str, Deferred[str]]] = deque()
        self._timer: Any = None

    def add(self, connection: HostConnection, header: str, d: Deferred[str]) -> None:
        self._queue.append((self._reactor.seconds() + self._timeout, connection, header, d))
        if self._timer is None:
            self._timer = self._reactor.callLater(self._timeout, self._expire)

    def _expire(self) -> None:
        self._timer = None
        now = self._reactor.seconds()
        queue = self._queue
        while queue:
            deadline, connection, header, d = queue[0]
            if not d.called and deadline > now:
                self._timer = self._reactor.callLater(deadline - now, self._expire)
                return
            queue.popleft()
            if not d.called:
                connection.expire(header, d, self._timeout)

    def stop(self) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None


class PayShieldClient:
    """The HSM interface spoken to a payShield (or ``python -m hsm_sim``) over TCP."""

    def __init__(
        self,
        url: str,
        reactor: Any,
        header_length: int = 4,
        pool_size: int = 2,
        timeout: float = 2.0,
    ) -> None:
        if header_length < 1 or pool_size < 1 or timeout <= 0:
            raise ValueError("header length and pool size must be at least 1, timeout positive")
        host, port = parse_url(url)
        self._reactor = reactor
        self._endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=timeout)
        self._header_length = header_length
        self._pool_size = pool_size
        self._timeout = timeout
        self._connected: list[HostConnection] = []
        self._connecting = 0
        self._waiting: list[Deferred[HostConnection]] = []
        self._closed = False
        self._deadlines = _Deadlines(reactor, timeout)

    # ------------------------------------------------------------ the pool

    @property
    def connections(self) -> tuple[HostConnection, ...]:
        """The open connections (at most ``pool_size``)."""
        return tuple(self._connected)

    def _least_busy(self) -> HostConnection | None:
        """The open connection with the fewest requests in flight; the pool is topped up."""
        self._fill_pool()
        if not self._connected:
            return None
        return min(self._connected, key=_in_flight)

    def _connection(self) -> Deferred[HostConnection]:
        """A connection once one is open (only the first calls wait for one)."""
        if self._closed:
            return fail(HsmUnavailable("client closed"))
        connection = self._least_busy()
        if connection is not None:
            return succeed(connection)
        d: Deferred[HostConnection] = Deferred(self._waiting.remove)
        self._waiting.append(d)
        return d

    def _fill_pool(self) -> None:
        while len(self._connected) + self._connecting < self._pool_size:
            self._connecting += 1
            connection = HostConnection(self._header_length, self._lost)
            d = connectProtocol(self._endpoint, connection)
            d.addCallbacks(self._made, self._not_made)

    def _made(self, connection: HostConnection) -> None:
        self._connecting -= 1
        if self._closed:
            connection.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._connected.append(connection)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(connection)

    def _not_made(self, failure: Failure) -> None:
        self._connecting -= 1
        if self._connected or self._connecting:
            return  # another connection will serve the waiting calls
        log.warning("cannot connect to the HSM", error=failure.getErrorMessage())
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(HsmUnavailable(f"cannot connect to the HSM: {failure.getErrorMessage()}"))

    def _lost(self, connection: HostConnection) -> None:
        if connection in self._connected:
            self._connected.remove(connection)

    def close(self) -> Deferred[None]:
        """Close every connection; fires when they are all closed."""
        self._closed = True
        self._deadlines.stop()
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(HsmUnavailable("client closed"))
        connections = list(self._connected)
        for connection in connections:
            connection.transport.loseConnection()  # type: ignore[union-attr]
        return gatherResults([c.lost for c in connections]).addCallback(lambda _: None)

    # ------------------------------------------------------------ one command

    def _call(
        self,
        command: str,
        values: Mapping[str, str],
        result: Callable[..., T] | None = None,
        *args: Any,
    ) -> Deferred[T]:
        """Send one command; ``result(answer, command, values, *args)`` of its answer
        (default: its fields), or the typed error of its error code."""
        text = command + encode(COMMANDS[command].request, values)
        convert = result or _answer
        connection = None if self._closed else self._least_busy()
        if connection is None:  # closed, or no connection open yet: the slow way
            d = self._connection().addCallback(lambda c: c.request(text)[1])
            d.addTimeout(self._timeout, self._reactor, onTimeoutCancel=_timed_out)
            return d.addCallback(convert, command, values, *args)
        header, answer = connection.request(text)
        self._deadlines.add(connection, header, answer)
        return answer.addCallback(convert, command, values, *args)

    # ------------------------------------------------------------ the interface

    @_deferred
    def translate_pin(
        self,
        source: KeyUnderLmk,
        destination: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        destination_format: str = "01",
        max_pin_length: int = 12,
    ) -> Deferred[TranslatedPin]:
        check_key_type(source, PIN_KEYS)
        check_key_type(destination, PIN_DESTINATIONS)
        values = {
            "source": source.value,
            "destination": destination.value,
            "max_pin_length": f"{max_pin_length:02d}",
            "pin_block": pin_block.value,
            "source_format": pin_block.format_code,
            "destination_format": destination_format,
            "account": account_number(pan),
        }
        d = self._call(TRANSLATE_COMMANDS[source.key_type], values)
        return d.addCallback(_translated)

    @_deferred
    def verify_pin_pvv(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        pvki: int,
        pvv: str,
    ) -> Deferred[bool]:
        check_key_type(pin_key, PIN_KEYS)
        check_key_type(pvk, PVKS)
        values = {
            "pin_key": pin_key.value,
            "pvk": pvk.value,
            "pin_block": pin_block.value,
            "format": pin_block.format_code,
            "account": account_number(pan),
            "pvki": str(pvki),
            "pvv": pvv,
        }
        return self._call(VERIFY_PVV_COMMANDS[pin_key.key_type], values, _verdict)

    @_deferred
    def verify_pin_ibm(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        ibm: IbmParameters,
        max_pin_length: int = 12,
    ) -> Deferred[bool]:
        check_key_type(pin_key, PIN_KEYS)
        check_key_type(pvk, PVKS)
        values = {
            "pin_key": pin_key.value,
            "pvk": pvk.value,
            "max_pin_length": f"{max_pin_length:02d}",
            "pin_block": pin_block.value,
            "format": pin_block.format_code,
            "check_length": f"{ibm.check_length:02d}",
            "account": account_number(pan),
            "decimalisation": ibm.decimalisation,
            "validation_data": ibm.validation_data,
            "offset": ibm.offset.ljust(12, "F"),
        }
        return self._call(VERIFY_IBM_COMMANDS[pin_key.key_type], values, _verdict)

    def _mac_values(
        self, key: KeyUnderLmk, data: bytes, algorithm: MacAlgorithm, padding: Padding, length: int
    ) -> dict[str, str]:
        check_key_type(key, MAC_KEYS)
        return {
            "mode": SINGLE_BLOCK_MODE,
            "input_format": BINARY_INPUT,
            "mac_size": _code(_MAC_SIZE_OF, length, "MAC length"),
            "algorithm": algorithm.value,
            "padding": padding.value,
            "key_type": key.key_type,
            "key": key.value,
            "message": data.decode("latin-1"),
        }

    @_deferred
    def generate_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        algorithm: MacAlgorithm,
        padding: Padding,
        length: int = 8,
    ) -> Deferred[str]:
        values = self._mac_values(key, data, algorithm, padding, length)
        return self._call("M6", values, _answer_field, "mac")

    @_deferred
    def verify_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        mac: str,
        algorithm: MacAlgorithm,
        padding: Padding,
    ) -> Deferred[bool]:
        values = self._mac_values(key, data, algorithm, padding, len(mac))
        values["mac"] = mac.upper()
        return self._call("M8", values, _verdict)

    @_deferred
    def generate_key(
        self,
        key_type: str,
        scheme: str = "U",
        export_under: KeyUnderLmk | None = None,
        export_scheme: str = "X",
    ) -> Deferred[GeneratedKey]:
        values = {"mode": "0", "key_type": key_type, "scheme": scheme}
        if export_under is not None:
            check_key_type(export_under, KEKS)
            values.update(
                mode="1",
                kek_flag=_KEK_FLAG_OF[export_under.key_type],
                kek=export_under.value,
                kek_scheme=export_scheme,
            )
        return self._call("A0", values).addCallback(_generated, key_type)

    @_deferred
    def import_key(
        self, key_type: str, zmk: KeyUnderLmk, key_under_zmk: str, scheme: str | None = None
    ) -> Deferred[KeyUnderLmk]:
        if key_type not in IMPORTABLE:
            raise InvalidInput("only a ZPK can be imported")
        check_key_type(zmk, ZMKS)
        values = {"zmk": zmk.value, "key_under_zmk": key_under_zmk}
        if scheme is not None:
            kek_scheme = key_under_zmk[:1].upper() if key_under_zmk[:1].isalpha() else "Z"
            values.update(kek_scheme=kek_scheme, scheme=scheme, kcv_type="0")
        d = self._call("FA", values)
        return d.addCallback(lambda f: KeyUnderLmk(key_type, f["key"], f["kcv"][:6]))

    @_deferred
    def key_check_value(self, key: KeyUnderLmk) -> Deferred[str]:
        values = {
            "type_code": _BU_CODE_OF.get(key.key_type, "FF"),
            "length_flag": _code(_LENGTH_FLAG_OF, key_length(key.value), "key length"),
            "key": key.value,
            "key_type": key.key_type,
        }
        return self._call("BU", values, _answer_field, "kcv")

    @_deferred
    def form_key(
        self, key_type: str, components: tuple[KeyUnderLmk, ...], scheme: str = "U"
    ) -> Deferred[KeyUnderLmk]:
        values = {"count": str(len(components)), "key_type": key_type, "scheme": scheme}
        if len(components) > 9:
            raise InvalidInput("at most 9 components")
        for i, component in enumerate(components, 1):
            check_key_type(component, (key_type,))
            values[f"component{i}"] = component.value
        d = self._call("A4", values)
        return d.addCallback(lambda f: KeyUnderLmk(key_type, f["key"], f["kcv"]))

    @_deferred
    def generate_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str
    ) -> Deferred[str]:
        check_key_type(cvk, CVKS)
        values = {"cvk": cvk.value, "pan": pan, "expiry": expiry, "service_code": service_code}
        return self._call("CW", values, _answer_field, "cvv")

    @_deferred
    def verify_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str, cvv: str
    ) -> Deferred[bool]:
        check_key_type(cvk, CVKS)
        values = {
            "cvk": cvk.value,
            "cvv": cvv,
            "pan": pan,
            "expiry": expiry,
            "service_code": service_code,
        }
        return self._call("CY", values, _verdict)

    @_deferred
    def diagnostics(self) -> Deferred[Diagnostics]:
        d = self._call("NC", {})
        return d.addCallback(lambda f: Diagnostics(f["lmk_check_value"], f["firmware"]))


# ---------------------------------------------------------------- answers


def _answer(text: str, command: str, values: Mapping[str, str]) -> Fields:
    """The fields of an answer; its error code as a typed error (01 included)."""
    code, error = text[:2], text[2:4]
    if len(error) != 2:
        raise HsmBadResponse(f"{command}: answer too short")
    if error != "00":  # the response code was checked with the header (HostConnection)
        raise error_for(error, f"{command} answered {code}{error}")
    try:
        return decode(COMMANDS[command].response, text[4:], values)
    except HsmFailure as exc:
        raise HsmBadResponse(f"{command}: {exc}") from None


def _answer_field(text: str, command: str, values: Mapping[str, str], name: str) -> str:
    """One field of an answer (a MAC, a check value)."""
    return _answer(text, command, values)[name]


def _verdict(text: str, command: str, values: Mapping[str, str]) -> bool:
    """Verification: 00 is True, 01 is False, any other error stays an error."""
    try:
        _answer(text, command, values)
    except VerificationFailed:
        return False
    return True


def _in_flight(connection: HostConnection) -> int:
    return connection.in_flight


def _translated(f: Fields) -> TranslatedPin:
    return TranslatedPin(PinBlock(f["pin_block"], f["destination_format"]), int(f["pin_length"]))


def _generated(f: Fields, key_type: str) -> GeneratedKey:
    return GeneratedKey(KeyUnderLmk(key_type, f["key"], f["kcv"]), f.get("key_under_kek"))
