"""``python -m loadtest.biller_bench``: payments/s the reference biller server takes alone.

Starts ``routing.biller_sim`` in a child process on a fresh store (or loads one
already running, ``--url``), keeps ``--connections`` HTTP/1.1 keep-alive
connections each with one signed payment in flight for ``--duration`` seconds
(after ``--warmup``), and reports accepted payments/s, latency percentiles and
the server's CPU per payment (from /proc, when it is our child). The client is
a bare Twisted protocol, not an HTTP library, so it costs the two cores little.
Every answer's status is counted; anything but 200 is an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twisted.internet import protocol

from loadtest.biller_process import BillerSimProcess
from routing import signing
from routing.biller_sim.catalogue import BILLERS


class Payer(protocol.Protocol):
    """One connection: a signed payment, its whole answer, the next payment."""

    def __init__(self, bench: Bench) -> None:
        self._bench = bench
        self._buffer = b""
        self._sent = 0.0

    def connectionMade(self) -> None:
        self._send()

    def _send(self) -> None:
        if self._bench.stopping:
            self.transport.loseConnection()
            return
        self._sent = time.perf_counter()
        self.transport.write(self._bench.request())

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        head, sep, rest = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
        if len(rest) < length:
            return
        self._buffer = rest[length:]
        self._bench.answered(int(head.split(b" ", 2)[1]), time.perf_counter() - self._sent)
        self._send()


class Bench:
    def __init__(self, code: str, host: str, port: int, window: tuple[float, float]) -> None:
        self._biller = BILLERS[code]
        self._host = f"{host}:{port}".encode()
        self._prefix = f"/{code}".encode()
        self._window = window  # perf_counter start and end of the measured window
        self._run = os.getpid()
        self._next = 0
        self.stopping = False
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []

    def request(self) -> bytes:
        self._next += 1
        body = json.dumps(
            {
                "payment_id": f"B{self._run}-{self._next}",
                "account": self._account(),
                "amount": self._biller.min_amount,  # 100 for PWR01, 1 for TEL01
                "currency": self._biller.currency,
                "paid_at": "2026-11-21T10:00:00Z",
                "channel": "ATM",
            }
        ).encode()
        signed = signing.headers(self._biller.secret, body, datetime.now(UTC))
        head = (
            b"POST " + self._prefix + b"/payments HTTP/1.1\r\nHost: " + self._host
            + b"\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nX-Timestamp: " + signed["X-Timestamp"].encode()
            + b"\r\nX-Signature: " + signed["X-Signature"].encode() + b"\r\n\r\n"
        )  # fmt: skip
        return head + body

    def _account(self) -> str:
        """Any meter of a prepaid biller; TEL01's 5550002 (150000 due, 1 a payment) otherwise."""
        return str(100000 + self._next % 1000) if self._biller.open_accounts else "5550002"

    def answered(self, status: int, seconds: float) -> None:
        now = time.perf_counter()
        if self._window[0] <= now <= self._window[1]:
            self.statuses[status] += 1
            self.latencies.append(seconds)


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args: argparse.Namespace, host: str, port: int, pid: int | None) -> dict[str, Any]:
    from twisted.internet import reactor

    start = time.perf_counter() + args.warmup
    bench = Bench(args.biller, host, port, (start, start + args.duration))
    factory = protocol.ClientFactory.forProtocol(lambda: Payer(bench))
    for _ in range(args.connections):
        reactor.connectTCP(host, port, factory)
    marks: dict[str, float | None] = {}
    reactor.callLater(args.warmup, lambda: marks.update(cpu0=pid and _cpu_seconds(pid)))
    reactor.callLater(
        args.warmup + args.duration, lambda: marks.update(cpu1=pid and _cpu_seconds(pid))
    )
    reactor.callLater(args.warmup + args.duration, setattr, bench, "stopping", True)
    reactor.callLater(args.warmup + args.duration + 0.5, reactor.stop)
    reactor.run()
    return _report(args, bench, marks)


def _report(args: argparse.Namespace, bench: Bench, marks: dict[str, Any]) -> dict[str, Any]:
    latencies = sorted(bench.latencies)
    ok = bench.statuses.get(200, 0)

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    made = {
        "biller": args.biller,
        "connections": args.connections,
        "duration_s": args.duration,
        "accepted": ok,
        "accepted_per_s": round(ok / args.duration),
        "statuses": dict(bench.statuses),
        "p50_ms": pct(0.50) if latencies else None,
        "p99_ms": pct(0.99) if latencies else None,
    }
    if marks.get("cpu0") is not None and marks.get("cpu1") is not None and ok:
        cpu = marks["cpu1"] - marks["cpu0"]
        made["server_cpu_us_per_payment"] = round(1e6 * cpu / ok)
        made["server_cpu_share"] = round(cpu / args.duration, 2)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.biller_bench", description=__doc__)
    parser.add_argument("--biller", choices=sorted(BILLERS), default="PWR01")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--url", help="load this running server (http://HOST:PORT) instead")
    parser.add_argument("--synchronous", choices=("normal", "full"), default="normal")
    args = parser.parse_args(argv)
    if args.url:
        host, port = args.url.split("//", 1)[-1].rsplit(":", 1)
        print(json.dumps(measure(args, host, int(port), None)))
        return 0
    with tempfile.TemporaryDirectory(prefix="biller-bench-") as home:
        sync = ["--synchronous", args.synchronous]
        with BillerSimProcess(Path(home), args=sync) as server:
            print(json.dumps(measure(args, "127.0.0.1", server.port, server.pid)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
