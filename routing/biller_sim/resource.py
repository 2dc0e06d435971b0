"""The HTTP face: each biller's API under ``/<CODE>/``, the test control API under ``/_control/``.

Biller API (billers.md "Online biller API"), every request signed and every
answer signed with the biller's secret (``routing.signing``):

- ``POST /<CODE>/bills/fetch``
- ``POST /<CODE>/payments``
- ``POST /<CODE>/payments/<payment_id>/reversal``
- ``GET  /<CODE>/payments/<payment_id>``

Control API (tests only; unsigned; refused with 403 unless from the loopback):

- ``GET  /_control``: the billers served
- ``GET  /_control/<CODE>``: the biller's faults, held answers and stalled connections
- ``POST /_control/<CODE>`` with a faults object (faults.py; ``{}`` clears): replaces
  the faults, sends the held answers and cuts the stalled connections
- ``GET  /_control/<CODE>/payments``: every payment the biller holds
- ``GET  /_control/<CODE>/accounts/<account>``: one account as stored
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from routing import signing
from routing.biller_sim import bodies
from routing.biller_sim.catalogue import Account, Biller
from routing.biller_sim.errors import (
    DECLINES,
    AccountClosed,
    ApiError,
    BadRequest,
    BadSignature,
    Forbidden,
    MethodNotAllowed,
    NotFound,
    Unavailable,
    UnknownBiller,
)
from routing.biller_sim.faults import FOREVER, FaultBoard, Faults
from routing.biller_sim.holds import Holds
from routing.biller_sim.store import Store

CONTROL = "_control"
ANY = None  # a path segment that is a payment id
# (method, path after /<CODE>/, operation): the biller API's routes.
ROUTES: tuple[tuple[bytes, tuple[str | None, ...], str], ...] = (
    (b"POST", ("bills", "fetch"), "fetch"),
    (b"POST", ("payments",), "pay"),
    (b"POST", ("payments", ANY, "reversal"), "reverse"),
    (b"GET", ("payments", ANY), "status"),
)
LOOPBACK_PREFIXES = ("127.", "::ffff:127.")
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


def route(method: bytes, rest: list[str]) -> tuple[str, str | None]:
    """The operation and payment id of a biller API path (404 / 405 otherwise)."""
    shape_found = False
    for want_method, shape, op in ROUTES:
        if len(shape) != len(rest) or any(
            s is not ANY and s != r for s, r in zip(shape, rest, strict=True)
        ):
            continue
        shape_found = True
        if method == want_method:
            ids = [r for s, r in zip(shape, rest, strict=True) if s is ANY]
            return op, bodies.payment_id(ids[0]) if ids else None
    if shape_found:
        raise MethodNotAllowed(f"{method.decode('ascii', 'replace')} is not allowed here")
    raise NotFound("no such path in the biller API")


def split_path(raw: bytes) -> list[str]:
    """The path's segments, percent-decoded, without the query."""
    path = raw.split(b"?", 1)[0].decode("ascii", "replace")
    return [unquote(part) for part in path.strip("/").split("/")]


class BillerSim(Resource):
    """Every path of the server; the work is in Deferreds, the store in its own thread."""

    isLeaf = True

    def __init__(
        self,
        reactor: Any,
        billers: dict[str, Biller],
        store: Store,
        run_in_store: Callable[..., Deferred[Any]],
        board: FaultBoard,
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self._billers = billers
        self._store = store
        self._in_store = run_in_store
        self.board = board
        self.holds = Holds(reactor)
        self._operations: dict[str, Callable[..., Any]] = {
            "fetch": lambda biller, body, pid: _bill(biller, store.fetch(biller, body.account)),
            "pay": lambda biller, body, pid: store.pay(biller, body),
            "reverse": lambda biller, body, pid: store.reverse(biller, pid),
            "status": lambda biller, body, pid: store.status(biller, pid),
        }

    def render(self, request: Any) -> Any:
        segments = split_path(request.uri)
        serve = self._serve_control if segments[0] == CONTROL else self._serve_biller
        done = ensureDeferred(serve(request, segments))
        done.addErrback(self._internal_error, request)
        return NOT_DONE_YET

    def stalls(self, method: bytes, raw_path: bytes) -> str | None:
        """The biller whose ``stop_reading`` fault this request meets, counted (or None)."""
        segments = split_path(raw_path)
        code = segments[0]
        if code not in self._billers:
            return None
        try:
            op, _ = route(method, segments[1:])
        except ApiError:
            return None
        found = self.board.peek(code, op)
        if found is None or not found.stop_reading:
            return None
        self.board.take(code, op)
        return code

    async def _serve_biller(self, request: Any, segments: list[str]) -> None:
        biller = self._billers.get(segments[0])
        if biller is None:
            _write(request, 404, UnknownBiller(f"no biller {segments[0]} here").body(), None)
            return
        gone = _watch(request)
        faults: Faults | None = None
        try:
            op, pid = route(request.method, segments[1:])
            body = request.content.read()
            if not _signed(request, biller, body):
                raise BadSignature("bad or stale signature")
            parsed = _PARSERS[op](body)
            faults = self.board.take(biller.code, op)
            if faults is not None and faults.delay:
                await deferLater(self._reactor, faults.delay, lambda: None)
                if gone:  # the client gave up while we were slow: dropped unprocessed
                    return
            _refuse_by_fault(faults)
            status, answer = 200, await self._in_store(self._operations[op], biller, parsed, pid)
        except ApiError as refused:
            status, answer = refused.status, refused.body()
        await self._answer(request, biller, status, answer, faults, gone)

    async def _answer(
        self,
        request: Any,
        biller: Biller,
        status: int,
        answer: dict[str, Any],
        faults: Faults | None,
        gone: list[bool],
    ) -> None:
        if faults is not None and faults.hang:
            await self._hold(request, biller.code, faults.hang, gone)
        if gone:
            return
        corrupt = faults.corrupt if faults is not None else None
        body, content_type = _spoil(corrupt, json.dumps(answer).encode())
        headers = signing.headers(biller.secret, body, datetime.now(UTC))
        if corrupt == "bad_signature":
            headers["X-Signature"] = signing.sign(b"not-the-secret", headers["X-Timestamp"], body)
        if corrupt != "cut_body":
            _write(request, status, body, headers, content_type)
            return
        _start(request, status, headers, content_type, len(body))
        request.write(body[: len(body) // 2])
        await self._hold(request, biller.code, FOREVER, gone)
        if not gone:  # closed before the promised length: the body is cut
            request.channel.transport.loseConnection()

    async def _hold(self, request: Any, code: str, seconds: float, gone: list[bool]) -> None:
        """Wait as the fault says; a client that goes away ends the wait too."""
        if gone:  # notifyFinish would never fire for a request already lost
            return
        held = self.holds.hold(code, seconds)
        request.notifyFinish().addErrback(lambda _: held.called or held.callback(None))
        await held

    async def _serve_control(self, request: Any, segments: list[str]) -> None:
        try:
            if not _loopback(getattr(request.getClientAddress(), "host", "")):
                raise Forbidden("the control API answers only on the loopback")
            status, answer = 200, await self._control(request, segments[1:])
        except ApiError as refused:
            status, answer = refused.status, refused.body()
        _write(request, status, json.dumps(answer).encode(), None)

    async def _control(self, request: Any, rest: list[str]) -> Any:
        if rest in ([], [""]):
            return {"billers": sorted(self._billers)}
        biller = self._billers.get(rest[0])
        if biller is None:
            raise UnknownBiller(f"no biller {rest[0]} here")
        method, tail = request.method, rest[1:]
        if tail == [] and method == b"POST":
            return self._set_faults(biller.code, request.content.read())
        if tail == [] and method == b"GET":
            return self._fault_state(biller.code)
        if tail == ["payments"] and method == b"GET":
            payments = await self._in_store(self._store.payments, biller)
            return {"biller": biller.code, "payments": payments}
        if len(tail) == 2 and tail[0] == "accounts" and method == b"GET":
            found = await self._in_store(self._store.fetch, biller, tail[1])
            return {"biller": biller.code, **asdict(found)}
        raise NotFound("no such control path")

    def _set_faults(self, code: str, body: bytes) -> dict[str, Any]:
        try:
            faults = Faults.from_json(bodies.json_object(body))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        self.board.set(code, faults)
        self.holds.release(code)
        return self._fault_state(code)

    def _fault_state(self, code: str) -> dict[str, Any]:
        return {"biller": code, "faults": self.board.get(code).to_json(), **self.holds.counts(code)}

    def _internal_error(self, failure: Any, request: Any) -> None:
        """A bug: the traceback goes to our log, the client gets a plain 500."""
        traceback.print_exception(failure.value, file=sys.stderr)
        if not request.finished and not request._disconnected:
            body = {"error": "internal", "message": "the biller server failed"}
            _write(request, 500, json.dumps(body).encode(), None)


_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "fetch": bodies.fetch_body,
    "pay": bodies.payment_body,
    "reverse": bodies.reversal_body,
    "status": lambda body: None,
}


def _loopback(host: str) -> bool:
    return host == "::1" or host.startswith(LOOPBACK_PREFIXES)


def _bill(biller: Biller, account: Account) -> dict[str, Any]:
    """A fetch's answer (billers.md); a closed account is refused."""
    if account.closed:
        raise AccountClosed(f"account {account.account} is closed")
    return {
        "account": account.account,
        "name": account.name,
        "amount_due": account.amount_due,
        "currency": biller.currency,
        "period": account.period,
        "invoice": account.invoice,
        "due_date": account.due_date,
    }


def _refuse_by_fault(faults: Faults | None) -> None:
    if faults is None:
        return
    if faults.error is not None:
        raise Unavailable("unavailable (injected fault)", faults.error)
    if faults.decline is not None:
        raise DECLINES[faults.decline]("declined (injected fault)")


def _signed(request: Any, biller: Biller, body: bytes) -> bool:
    stamp, signature = (_header(request, name) for name in (b"x-timestamp", b"x-signature"))
    return signing.verify(biller.secret, stamp, body, signature, datetime.now(UTC))


def _header(request: Any, name: bytes) -> str | None:
    value = request.getHeader(name)
    return None if value is None else value.decode("latin-1")


def _spoil(corrupt: str | None, body: bytes) -> tuple[bytes, bytes]:
    """The answer's bytes and content type, spoilt as the fault says."""
    if corrupt == "not_json":
        return b"accepted, probably", b"application/json"
    if corrupt == "html":
        return HTML, b"text/html"
    if corrupt == "wrong_types":
        wrapped = {k: [v] for k, v in json.loads(body).items()}
        return json.dumps(wrapped).encode(), b"application/json"
    return body, b"application/json"


def _watch(request: Any) -> list[bool]:
    """A list that becomes non-empty when the client goes away."""
    gone: list[bool] = []
    request.notifyFinish().addErrback(lambda _: gone.append(True))
    return gone


def _start(
    request: Any, status: int, headers: dict[str, str] | None, content_type: bytes, length: int
) -> None:
    request.setResponseCode(status)
    request.setHeader(b"content-type", content_type)
    request.setHeader(b"content-length", str(length).encode())
    for name, value in (headers or {}).items():
        request.setHeader(name.encode(), value.encode())


def _write(
    request: Any,
    status: int,
    body: Any,
    headers: dict[str, str] | None,
    content_type: bytes = b"application/json",
) -> None:
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    _start(request, status, headers, content_type, len(body))
    request.write(body)
    request.finish()
