"""A deliberately broken online biller: one twisted.web server, many billers, each
behaving as a test tells it (reusable by end-to-end tests).

A biller is the first path segment (``http://127.0.0.1:PORT/NAME/payments``);
``server.behave(NAME, BEHAVIOUR)`` chooses what it does, ``ok`` by default: a
correct biller of the API (billers.md), checking request signatures and
signing its answers, with a few accounts (``ACCOUNTS``) and idempotent payments.
The other behaviours are the ways a biller breaks (``BEHAVIOURS``). The server
counts requests per biller and notices when a held request's connection is
dropped by the client, so tests can see what reached the network.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from twisted.web import resource, server
from twisted.web.server import NOT_DONE_YET, Request

from routing import signing
from routing.billers import Endpoint

SECRET = b"broken-biller-test-secret"
ACCOUNTS = {  # account -> (name, amount due)
    "5550001": ("GILMAN P", 8800),
    "5550002": ("ODUYA K", 150000),
    "5550003": ("PAID UP", 0),
}
PERIOD, INVOICE = "202611", "INV-7822"
ERROR_STATUS = {  # the API's error codes and their HTTP status; teapot is "any other 4xx"
    "unknown_account": 404,
    "amount_not_accepted": 422,
    "account_closed": 422,
    "bad_signature": 401,
    "conflict": 409,
    "teapot": 418,
}
Answer = tuple[int, Any]  # HTTP status, JSON value


class BrokenBiller(resource.Resource):
    isLeaf = True

    def __init__(self, secret: bytes = SECRET) -> None:
        super().__init__()
        self.secret = secret
        self.behaviour: dict[str, str] = {}
        self.requests: Counter[str] = Counter()  # requests seen, per biller
        self.dropped: Counter[str] = Counter()  # held requests whose connection went away
        self.held: list[Request] = []
        self.connections_made = 0
        self.payments: dict[str, dict[str, Any]] = {}  # payment_id -> request, status, ref
        self._seen = threading.Condition()

    # ------------------------------------------------------------ for tests

    def listen(self, reactor: Any) -> Any:
        """Listen on 127.0.0.1, an ephemeral port (call on the reactor's thread)."""
        site = _CountingSite(self)
        site.noisy = False
        return reactor.listenTCP(0, site, interface="127.0.0.1")

    def behave(self, biller: str, behaviour: str) -> None:
        assert behaviour in BEHAVIOURS or behaviour.startswith("error:"), behaviour
        self.behaviour[biller] = behaviour

    def endpoint(
        self, port: int, biller: str, secret: bytes | None = None, **kwargs: Any
    ) -> Endpoint:
        """The endpoint of one of the billers (under the server's secret unless told)."""
        url = f"http://127.0.0.1:{port}/{biller}"
        return Endpoint(url, self.secret if secret is None else secret, **kwargs)

    def wait_for(self, biller: str, requests: int, timeout: float = 30.0) -> None:
        """Block (in the test's thread) until the biller has seen that many requests."""
        with self._seen:
            if not self._seen.wait_for(lambda: self.requests[biller] >= requests, timeout):
                raise AssertionError(f"{biller}: {self.requests[biller]} requests seen")

    def wait_dropped(self, biller: str, count: int, timeout: float = 30.0) -> None:
        with self._seen:
            if not self._seen.wait_for(lambda: self.dropped[biller] >= count, timeout):
                raise AssertionError(f"{biller}: {self.dropped[biller]} connections dropped")

    def release(self) -> None:
        """Drop every held request's connection (teardown)."""
        for request in self.held:
            if request.channel is not None:
                request.channel.transport.abortConnection()
        self.held.clear()

    # ------------------------------------------------------------ serving

    def render(self, request: Request) -> bytes | int:
        path = [p.decode() for p in request.postpath]
        biller, rest = path[0], path[1:]
        with self._seen:
            self.requests[biller] += 1
            self._seen.notify_all()
        behaviour = self.behaviour.get(biller, "ok")
        if behaviour.startswith("error:"):
            code = behaviour.split(":", 1)[1]
            return self._answer(request, ERROR_STATUS[code], {"error": code, "message": code})
        return BEHAVIOURS[behaviour](self, request, biller, rest)

    def _answer(self, request: Request, status: int, value: Any, sign: bool = True) -> bytes:
        body = value if isinstance(value, bytes) else json.dumps(value).encode()
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        if sign:
            for name, header in signing.headers(self.secret, body, _now()).items():
                request.setHeader(name.encode(), header.encode())
        return body

    def _hold(self, request: Request, biller: str) -> None:
        self.held.append(request)

        def dropped(_: Any) -> None:
            with self._seen:
                self.dropped[biller] += 1
                self._seen.notify_all()

        request.notifyFinish().addErrback(dropped)

    # ------------------------------------------------------------ behaviours

    def ok(self, request: Request, biller: str, rest: list[str]) -> bytes:
        return self._answer(request, *self.api(request, rest))

    def api(self, request: Request, rest: list[str]) -> Answer:
        """The correct biller's answer to a request."""
        body = request.content.read()
        stamp = _text(request.getHeader(b"X-Timestamp"))
        signature = _text(request.getHeader(b"X-Signature"))
        if not signing.verify(self.secret, stamp, body, signature, _now()):
            return _error("bad_signature")
        method = request.method
        if method == b"POST" and rest == ["bills", "fetch"]:
            return self._fetch(json.loads(body))
        if method == b"POST" and rest == ["payments"]:
            return self._pay(json.loads(body))
        if method == b"POST" and len(rest) == 3 and rest[0] == "payments" and rest[2] == "reversal":
            return self._reverse(rest[1])
        if method == b"GET" and len(rest) == 2 and rest[0] == "payments":
            return self._status(rest[1])
        return 404, {"error": "not_found", "message": "no such resource"}

    def _fetch(self, asked: dict[str, Any]) -> Answer:
        account = asked["account"]
        if account not in ACCOUNTS:
            return _error("unknown_account")
        name, due = ACCOUNTS[account]
        return 200, {
            "account": account,
            "name": name,
            "amount_due": due,
            "currency": "944",
            "period": PERIOD if due else None,
            "invoice": INVOICE if due else None,
            "due_date": "2026-11-25",
        }

    def _pay(self, asked: dict[str, Any]) -> Answer:
        known = self.payments.get(asked["payment_id"])
        if known is not None:
            return (200, known["answer"]) if known["request"] == asked else _error("conflict")
        if asked["account"] not in ACCOUNTS:
            return _error("unknown_account")
        if asked["amount"] <= 0:
            return _error("amount_not_accepted")
        number = len(self.payments) + 1
        answer = {
            "status": "accepted",
            "biller_ref": f"REF{number:06d}",
            "receipt": f"VAT{number:06d}",
            "token": f"{number:020d}",
        }
        self.payments[asked["payment_id"]] = {
            "request": asked,
            "answer": answer,
            "status": "accepted",
        }
        return 200, answer

    def _reverse(self, payment_id: str) -> Answer:
        known = self.payments.get(payment_id)
        if known is None:
            return 404, {"error": "not_found", "message": "no such payment"}
        known["status"] = "reversed"
        return 200, {"status": "reversed"}

    def _status(self, payment_id: str) -> Answer:
        known = self.payments.get(payment_id)
        if known is None:
            return 404, {"error": "not_found", "message": "no such payment"}
        return 200, {
            "payment_id": payment_id,
            "status": known["status"],
            "account": known["request"]["account"],
            "amount": known["request"]["amount"],
            "biller_ref": known["answer"]["biller_ref"],
        }

    def garbage(self, request: Request, biller: str, rest: list[str]) -> bytes:
        return self._answer(request, 200, b"\x00\xffthis is not json{")

    def wrong_types(self, request: Request, biller: str, rest: list[str]) -> bytes:
        """Every field the API names, each of the wrong JSON type."""
        return self._answer(request, 200, WRONG_TYPES)

    def json_list(self, request: Request, biller: str, rest: list[str]) -> bytes:
        return self._answer(request, 200, [{"status": "accepted", "biller_ref": "R1"}])

    def html_502(self, request: Request, biller: str, rest: list[str]) -> bytes:
        request.setResponseCode(502)
        request.setHeader(b"Content-Type", b"text/html")
        return b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"

    def bad_signature(self, request: Request, biller: str, rest: list[str]) -> bytes:
        body = self._answer(request, *self.api(request, rest))
        request.setHeader(b"X-Signature", b"0" * 64)
        return body

    def no_signature(self, request: Request, biller: str, rest: list[str]) -> bytes:
        return self._answer(request, *self.api(request, rest), sign=False)

    def stale_signature(self, request: Request, biller: str, rest: list[str]) -> bytes:
        status, value = self.api(request, rest)
        body = json.dumps(value).encode()
        stale = datetime(2020, 1, 1, tzinfo=UTC)
        self._answer(request, status, body, sign=False)
        for name, header in signing.headers(self.secret, body, stale).items():
            request.setHeader(name.encode(), header.encode())
        return body

    def unavailable(self, request: Request, biller: str, rest: list[str]) -> bytes:
        return self._answer(request, 503, {"error": "unavailable", "message": "maintenance"})

    def hang(self, request: Request, biller: str, rest: list[str]) -> int:
        """Reads the request, never answers."""
        self._hold(request, biller)
        return NOT_DONE_YET

    def hang_mid_body(self, request: Request, biller: str, rest: list[str]) -> int:
        """Sends the headers and part of a signed body, then nothing more."""
        status, value = self.api(request, rest)
        body = self._answer(request, status, value)
        request.setHeader(b"Content-Length", str(len(body)).encode())
        request.write(body[: len(body) // 2])
        self._hold(request, biller)
        return NOT_DONE_YET

    def cut_body(self, request: Request, biller: str, rest: list[str]) -> int:
        """Sends the headers and part of the body, then closes the connection."""
        status, value = self.api(request, rest)
        body = self._answer(request, status, value)
        request.setHeader(b"Content-Length", str(len(body)).encode())
        request.write(body[: len(body) // 2])
        request.channel.transport.loseConnection()
        return NOT_DONE_YET

    def close(self, request: Request, biller: str, rest: list[str]) -> int:
        """Reads the request (it may have acted on it), closes without a word."""
        request.channel.transport.abortConnection()
        return NOT_DONE_YET

    def not_http(self, request: Request, biller: str, rest: list[str]) -> int:
        """Answers with bytes that are not HTTP at all."""
        request.channel.transport.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        request.channel.transport.loseConnection()
        return NOT_DONE_YET

    def huge(self, request: Request, biller: str, rest: list[str]) -> bytes:
        """A signed answer far larger than any answer of the API."""
        return self._answer(request, 200, {"status": "accepted", "biller_ref": "x" * 200_000})


class _CountingSite(server.Site):
    def buildProtocol(self, addr: Any) -> Any:
        self.resource.connections_made += 1
        return super().buildProtocol(addr)


WRONG_TYPES = {
    "status": "accepted",
    "biller_ref": 123,
    "receipt": 456,
    "payment_id": 7,
    "account": 5550001,
    "name": ["GILMAN"],
    "amount_due": "8800",
    "amount": 8800.0,
}

BEHAVIOURS: dict[str, Callable[..., bytes | int]] = {
    name: getattr(BrokenBiller, name)
    for name in (
        "ok",
        "garbage",
        "wrong_types",
        "json_list",
        "html_502",
        "bad_signature",
        "no_signature",
        "stale_signature",
        "unavailable",
        "hang",
        "hang_mid_body",
        "cut_body",
        "close",
        "not_http",
        "huge",
    )
}


def _error(code: str) -> Answer:
    return ERROR_STATUS[code], {"error": code, "message": code.replace("_", " ")}


def _text(header: bytes | None) -> str | None:
    return None if header is None else header.decode("ascii", "replace")


def _now() -> datetime:
    return datetime.now(UTC)
