"""Liveness and readiness for load balancers and systemd, on the metrics port.

- ``/healthz``: the reactor answers (the process is alive and not wedged): 200.
- ``/readyz``: this node can take traffic: the database answers a read, the
  HSM answers its diagnostics command, and the ledger queue is below
  ``READY_QUEUE_SHARE`` of its limit. 200 when all hold, 503 otherwise; the
  body is JSON naming each check, so an operator sees which one failed.

Each check is bounded by ``CHECK_TIMEOUT``: a database or HSM that hangs
makes the node unready, never the probe hang. Checks run through the same
thread pool and HSM client as traffic, so they see what traffic sees.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

CHECK_TIMEOUT = 2.0  # seconds
READY_QUEUE_SHARE = 0.9


@dataclass(frozen=True)
class Probe:
    """What readiness asks; each callable returns a Deferred that fails when unhealthy."""

    database: Callable[[], Deferred[Any]]
    hsm: Callable[[], Deferred[Any]]
    queue_depth: Callable[[], int]
    queue_max: int


class Healthz(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"ok\n"


class Readyz(Resource):
    isLeaf = True

    def __init__(self, probe: Probe, reactor: Any) -> None:
        super().__init__()
        self._probe = probe
        self._reactor = reactor

    def render_GET(self, request: Any) -> Any:
        checks = {"database": self._probe.database, "hsm": self._probe.hsm}
        names = list(checks)
        waits = [self._bounded(checks[name]) for name in names]
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = DeferredList(waits, consumeErrors=True)
        d.addCallback(lambda results: gone or self._answer(request, names, results))
        return NOT_DONE_YET

    def _bounded(self, check: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        d = maybeDeferred(check)
        d.addTimeout(CHECK_TIMEOUT, self._reactor)
        return d

    def _answer(self, request: Any, names: list[str], results: list) -> None:  # type: ignore[type-arg]
        pairs = zip(names, results, strict=True)
        report = {name: "ok" if ok else _reason(value) for name, (ok, value) in pairs}
        depth = self._probe.queue_depth()
        full = depth >= self._probe.queue_max * READY_QUEUE_SHARE
        report["ledger_queue"] = f"{'full' if full else 'ok'} ({depth} of {self._probe.queue_max})"
        ready = all(v == "ok" for k, v in report.items() if k != "ledger_queue") and not full
        request.setResponseCode(200 if ready else 503)
        request.setHeader(b"content-type", b"application/json")
        request.write(json.dumps({"ready": ready, "checks": report}).encode() + b"\n")
        request.finish()


def _reason(failure: Any) -> str:
    error = failure.value
    return f"failed: {type(error).__name__}"
