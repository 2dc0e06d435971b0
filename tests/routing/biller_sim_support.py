"""Talking to the reference biller server over real HTTP, as the switch would: signed
requests, answers whose signature the test can check (``routing.signing``)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from routing import signing
from routing.biller_sim.catalogue import BILLERS

WAIT = 30.0  # seconds: the bound of every wait (never reached when all is well)


@dataclass
class Answer:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, secret: bytes) -> bool:
        return signing.verify(
            secret,
            self.headers.get("x-timestamp"),
            self.body,
            self.headers.get("x-signature"),
            datetime.now(UTC),
        )


def call(
    port: int,
    code: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    secret: bytes | None = None,
    age: timedelta = timedelta(0),
    signed: bool = True,
    timeout: float = WAIT,
) -> Answer:
    """One request to ``/<code><path>``; ``body`` is JSON-encoded unless it is bytes."""
    data = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    key = BILLERS[code].secret if secret is None and code in BILLERS else secret or b"x"
    headers = {"Content-Type": "application/json"}
    if signed:
        headers |= signing.headers(key, data, datetime.now(UTC) - age)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, f"/{code}{path}", body=data or None, headers=headers)
        answer = connection.getresponse()
        return Answer(answer.status, answer.read(), {k.lower(): v for k, v in answer.getheaders()})
    finally:
        connection.close()


def payment(payment_id: str, account: str = "5550002", amount: int = 100, **more: Any) -> dict:
    return {
        "payment_id": payment_id,
        "account": account,
        "amount": amount,
        "currency": "944",
        "paid_at": "2026-11-21T10:00:00Z",
        "channel": "ATM",
        **more,
    }


class InBackground:
    """A call made in a thread, for answers that are held: its outcome once it ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=args, kwargs=kwargs, daemon=True)
        self._thread.start()

    def _run(self, *args: Any, **kwargs: Any) -> None:
        try:
            self.answer = call(*args, **kwargs)
        except (OSError, http.client.HTTPException) as exc:
            self.error = exc

    def result(self) -> Answer | BaseException:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the call did not end"
        return self.answer if self.answer is not None else self.error  # type: ignore[return-value]


def raw_exchange(port: int, request: bytes) -> socket.socket:
    """A connection with ``request`` sent on it, for reading answers byte by byte."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(request)
    return sock
