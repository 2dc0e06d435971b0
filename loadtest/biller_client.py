"""What the online biller client costs per call: N payments through ``OnlineAdapter``
against a trivial signed biller, with and without connection reuse.

    python -m loadtest.biller_client --calls 20000 --concurrency 32

The biller runs in a child process (a twisted.web resource that signs one fixed
acceptance), so the client's CPU time (``time.process_time`` of this process) is
the client's alone: CPU per call is the figure that matters on a shared box;
calls/s depends on the biller and on what else runs. ``--in-process`` serves from
the same reactor instead (the CPU figure then includes the biller's).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

from twisted.internet.protocol import Protocol

SECRET = b"bench-secret"
ANSWER = json.dumps({"status": "accepted", "biller_ref": "REF1", "receipt": "VAT1"}).encode()


def biller_site() -> Any:
    from twisted.web import resource, server

    from routing import signing

    class Trivial(resource.Resource):
        isLeaf = True

        def render(self, request: Any) -> bytes:
            request.content.read()
            request.setHeader(b"Content-Type", b"application/json")
            for name, value in signing.headers(SECRET, ANSWER, datetime.now(UTC)).items():
                request.setHeader(name.encode(), value.encode())
            return ANSWER

    site = server.Site(Trivial())
    site.noisy = False
    return site


def serve() -> None:
    """The child: listen on an ephemeral port, print it, serve until killed."""
    from twisted.internet import reactor

    port = reactor.listenTCP(0, biller_site(), backlog=512, interface="127.0.0.1")
    print(port.getHost().port, flush=True)
    reactor.run()


class _BareAgent:
    """The floor: twisted.web's Agent alone (same pool, same body), no signing, no
    checks, no circuit, no metrics: what the adapter adds is the difference."""

    def __init__(self, reactor: Any, endpoint: Any, persistent: bool) -> None:
        from twisted.web.client import Agent, HTTPConnectionPool

        pool = HTTPConnectionPool(reactor, persistent=persistent)
        pool.maxPersistentPerHost = endpoint.max_in_flight
        self._agent = Agent(reactor, pool=pool)
        self._url = endpoint.url.encode() + b"/payments"

    def pay(self, code: str, payment: Any) -> Any:
        from twisted.web.client import readBody

        from routing.biller_http import _Body

        body = json.dumps({"payment_id": payment.payment_id, "amount": payment.amount})
        d = self._agent.request(b"POST", self._url, None, _Body(body.encode()))
        return d.addCallback(readBody)


class _RawHttp:
    """What a lean client could cost: one keep-alive connection per call slot, the request
    written by hand (signed), the answer read by Content-Length and its signature checked;
    no chunked bodies, no time limits, no pool bookkeeping. Not a client: a yardstick."""

    def __init__(self, reactor: Any, endpoint: Any) -> None:
        self._reactor = reactor
        self._endpoint = endpoint
        self._idle: list[Any] = []

    def pay(self, code: str, payment: Any) -> Any:
        from twisted.internet.defer import Deferred
        from twisted.internet.endpoints import TCP4ClientEndpoint
        from twisted.internet.protocol import Factory

        from routing import signing

        body = json.dumps({"payment_id": payment.payment_id, "amount": payment.amount}).encode()
        stamp = signing.timestamp(datetime.now(UTC))
        head = (
            "POST /B/payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Timestamp: {stamp}\r\nX-Signature: {signing.sign(SECRET, stamp, body)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        done: Deferred[bytes] = Deferred()
        if self._idle:
            self._idle.pop().send(head + body, done)
            return done
        point = TCP4ClientEndpoint(self._reactor, "127.0.0.1", self._endpoint.port)
        made = point.connect(Factory.forProtocol(lambda: _RawProtocol(self._idle)))
        made.addCallback(lambda proto: proto.send(head + body, done))
        return done


class _RawProtocol(Protocol):
    def __init__(self, idle: list[Any]) -> None:
        self._idle = idle
        self._buffer = b""
        self._done: Any = None

    def send(self, data: bytes, done: Any) -> None:
        self._done = done
        self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        from routing import signing

        self._buffer += data
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
        length = int(fields.get(b"Content-Length", b"0"))
        if len(rest) < length:
            return
        body, self._buffer = rest[:length], rest[length:]
        stamp, signature = fields[b"X-Timestamp"].decode(), fields[b"X-Signature"].decode()
        assert signing.verify(SECRET, stamp, body, signature, datetime.now(UTC))
        json.loads(body)
        done, self._done = self._done, None
        self._idle.append(self)
        done.callback(body)


def measure(
    port: int,
    calls: int,
    concurrency: int,
    persistent: bool,
    bare: bool = False,
    raw: bool = False,
) -> dict[str, float]:
    """Run ``calls`` payments, ``concurrency`` at a time, on a fresh adapter."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    from routing.adapters.online import OnlineAdapter
    from routing.billers import Endpoint, PaymentRequest

    endpoint = Endpoint(f"http://127.0.0.1:{port}/B", SECRET, 3.0, concurrency)
    adapter: Any = OnlineAdapter(reactor, lambda code: endpoint, persistent=persistent)
    if bare:
        adapter = _BareAgent(reactor, endpoint, persistent)
    if raw:
        adapter = _RawHttp(reactor, type("E", (), {"port": port})())
    paid_at = datetime.now(UTC)
    counts = {"started": 0, "ok": 0, "failed": 0}
    finished: Deferred[None] = Deferred()

    def one() -> None:
        if counts["started"] == calls:
            if counts["ok"] + counts["failed"] == calls and not finished.called:
                finished.callback(None)
            return
        counts["started"] += 1
        p = PaymentRequest(f"P{counts['started']}", "5550001", 100, "944", paid_at, "ATM")
        d = adapter.pay("B", p)
        d.addCallbacks(lambda _: _count("ok"), lambda _: _failed())

    def _failed() -> None:
        counts["failed"] += 1  # refusals are synchronous: go on in a later turn, not deeper
        reactor.callLater(0, one)

    def _count(outcome: str) -> None:
        counts[outcome] += 1
        one()

    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(concurrency):
        reactor.callWhenRunning(one)
    finished.addBoth(lambda _: reactor.stop())
    reactor.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {
        "calls": calls,
        "ok": counts["ok"],
        "failed": counts["failed"],
        "calls_per_s": round(calls / wall),
        "cpu_us_per_call": round(cpu / calls * 1e6, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.biller_client")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--no-reuse", action="store_true", help="a connection per call")
    parser.add_argument("--bare", action="store_true", help="twisted's Agent alone (floor)")
    parser.add_argument("--raw", action="store_true", help="a hand-written HTTP/1.1 yardstick")
    parser.add_argument("--in-process", action="store_true", help="biller on the same reactor")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help="an already running biller's port")
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return
    child = None
    port = args.port
    if args.in_process:
        from twisted.internet import reactor

        port = reactor.listenTCP(0, biller_site(), interface="127.0.0.1").getHost().port
    elif port is None:
        command = [sys.executable, "-m", "loadtest.biller_client", "--serve"]
        child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        port = int(child.stdout.readline())
    try:
        result = measure(port, args.calls, args.concurrency, not args.no_reuse, args.bare, args.raw)
        result.update(reuse=not args.no_reuse, bare=args.bare, raw=args.raw)
        print(json.dumps(result))
    finally:
        if child is not None:
            child.terminate()
            child.wait()


if __name__ == "__main__":
    main()
