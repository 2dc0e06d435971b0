"""Payments by payer code (issue 12), measured: KÖMİS's "pay everything I owe".

Seeds ``--codes`` payer codes straight into the switch's database, each standing for
``--accounts`` new UTIL01 accounts owing ``--debts`` debts of ``--debt`` each (and,
with ``--online``, one of TEL01's 48 indebted demo accounts as well, shared out in
turn: the switch must serve TEL01, e.g. ``billswitch run --demo``, and a TEL01
account already paid owes nothing more), then, over the HOST channel from
``--connections`` connections at one request in flight each, asks each code's DL
(0200/31) and pays its total (0200/50): every payment is a split over ``accounts x
debts`` debts (plus the online part). The figures are the payments'; the
inquiries' median is beside them. ``--reverse N`` reverses every Nth approved split
(0400). Prints the rate, latency percentiles and the answer codes, then checks the
ledger: every approved split's head and parts add up, and its debts are closed unless
reversed.

    python -m loadtest.split_bench --db sqlite:///var/billswitch.db --codes 2000
    python -m loadtest.split_bench --db postgresql+psycopg2://postgres@127.0.0.1/test \\
        --codes 5000 --accounts 3 --debts 2 --connections 8 --reverse 10 --json split.json

A run's codes, customers and debts are named after its start (``SB<time>...``), so
runs never collide; nothing is deleted afterwards. Exit status 0, or 1 when the
ledger check fails, or 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, func, insert, select

from iso.amounts import amount_field, build_original_data
from iso.bill_data import build_bill_data, parse_bill_data
from iso.dialect import decode_message, encode_message
from iso.framing import BINARY2, FrameDecoder, encode_frame
from switch.ledger import payer_codes
from switch.ledger import schema as s
from switch.ledger.database import make_engine
from switch.ledger.queries import unbalanced_journal_rows

HOST_ACQUIRER = "200002"
UTIL, TEL = "UTIL01", "TEL01"
TEL_ACCOUNTS = [str(n) for n in range(5550003, 5550051)]  # 2500 each at the reference biller


@dataclass
class Seeded:
    codes: list[str]
    totals: dict[str, int]  # code -> what its UTIL01 accounts owe in all
    accounts: dict[str, list[str]]  # code -> its UTIL01 accounts


def seed(engine: Engine, n: int, accounts: int, debts: int, debt: int, online: bool) -> Seeded:
    """``n`` payer codes with their accounts and debts, in one transaction."""
    run = datetime.now(UTC).strftime("%y%m%d%H%M%S")
    result = Seeded([], {}, {})
    customers, rows, holdings = [], [], []
    now = datetime.now(UTC)
    for i in range(n):
        code = f"SB{run}{i:06d}"
        mine = [f"SB{run}{i:06d}{k:02d}" for k in range(accounts)]
        result.codes.append(code)
        result.accounts[code] = mine
        result.totals[code] = accounts * debts * debt
        pairs = [(UTIL, a) for a in mine]
        if online:
            pairs.append((TEL, TEL_ACCOUNTS[i % len(TEL_ACCOUNTS)]))
        holdings.extend(
            {"payer_code": code, "biller_code": b, "account": a, "position": p}
            for p, (b, a) in enumerate(pairs, 1)
        )
        for account in mine:
            customers.append({"biller_code": UTIL, "account": account, "name": "Split Bench"})
            rows.extend(
                {
                    "biller_code": UTIL,
                    "account": account,
                    "period": f"2025{d + 1:02d}",
                    "invoice": None,
                    "amount_original": debt,
                    "amount_open": debt,
                }
                for d in range(debts)
            )
    with engine.begin() as conn:
        conn.execute(insert(s.customers), customers)
        conn.execute(insert(s.debts), rows)
        conn.execute(insert(s.payer_codes), [{"code": c, "created_at": now} for c in result.codes])
        conn.execute(insert(s.payer_accounts), holdings)
    return result


class Line:
    """One blocking HOST connection, one request in flight."""

    _stans = itertools.count(random.randrange(1, 900000))

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.decoder = FrameDecoder(BINARY2, 65536)
        self.frames: list[bytes] = []

    def call(self, fields: dict[str, str]) -> dict[str, str]:
        self.sock.sendall(encode_frame(BINARY2, encode_message(fields)))
        while not self.frames:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the switch closed the connection")
            self.frames.extend(f.payload for f in self.decoder.feed(data))
        return decode_message(self.frames.pop(0))

    @classmethod
    def identity(cls) -> dict[str, str]:
        stan = next(cls._stans) % 999999 + 1
        return {
            "7": datetime.now(UTC).strftime("%m%d%H%M%S"),
            "11": f"{stan:06d}",
            "32": HOST_ACQUIRER,
        }


def payment(code: str, amount: int) -> dict[str, str]:
    return {
        "t": "0200",
        "3": "500000",
        "4": amount_field(amount),
        "49": "944",
        **Line.identity(),
        "48": build_bill_data({"PC": code}),
    }


def inquiry(code: str) -> dict[str, str]:
    return {"t": "0200", "3": "310000", **Line.identity(), "48": build_bill_data({"PC": code})}


def _total(answer: dict[str, str]) -> int:
    """What DL lists in all (the amount that pays every listed debt)."""
    listed = parse_bill_data(answer.get("48", "")).get("DL", "")
    return sum(int(entry.split(":")[2]) for entry in listed.split(";") if entry)


def reversal(original: dict[str, str]) -> dict[str, str]:
    return {
        "t": "0400",
        "3": original["3"],
        "4": original["4"],
        "49": original["49"],
        **Line.identity(),
        "90": build_original_data("0200", original["11"], original["7"], HOST_ACQUIRER),
    }


@dataclass
class Results:
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # payments
    inquiries: list[float] = field(default_factory=list)
    approved: dict[str, int] = field(default_factory=dict)  # code -> head payment id
    reversed: set[str] = field(default_factory=set)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def drive(args: argparse.Namespace, seeded: Seeded) -> tuple[Results, float]:
    work = iter(seeded.codes)
    take = threading.Lock()
    results = Results()

    def worker() -> None:
        try:
            line = Line(args.host, args.port, args.timeout)
            assert line.call({"t": "0800", **Line.identity(), "70": "001"}).get("39") == "00"
        except Exception as exc:  # counted, not raised: the others go on
            with results.lock:
                results.errors[type(exc).__name__] += 1
            return
        while True:
            with take:
                code = next(work, None)
            if code is None:
                return
            try:
                asked = time.perf_counter()
                listed = line.call(inquiry(code))
                total = _total(listed)
                started = time.perf_counter()
                request = payment(code, total)
                answer = line.call(request)
            except Exception as exc:
                with results.lock:
                    results.errors[type(exc).__name__] += 1
                return
            took = time.perf_counter() - started
            with results.lock:
                results.inquiries.append(started - asked)
                results.codes[answer.get("39", "??")] += 1
                results.latencies.append(took)
                if answer.get("39") == "00":
                    rn = parse_bill_data(answer.get("48", "")).get("RN", "P0")
                    results.approved[code] = int(rn[1:])
                    nth = len(results.approved)
            if answer.get("39") == "00" and args.reverse and nth % args.reverse == 0:
                if line.call(reversal(request)).get("39") == "00":
                    with results.lock:
                        results.reversed.add(code)

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, time.perf_counter() - began


def check(engine: Engine, seeded: Seeded, results: Results) -> list[str]:
    """Every approved split's parts add up to its head, and its UTIL01 debts are closed
    (all open again when it was reversed); the journal balances."""
    problems: list[str] = []
    p, d = s.payments.c, s.debts.c
    with engine.connect() as conn:
        if unbalanced_journal_rows(conn):
            problems.append("unbalanced journal rows")
        for code, head in results.approved.items():
            rows = conn.execute(select(p.id, p.amount).where(p.split_of == head)).all()
            amounts = {r.id: r.amount for r in rows}
            if head not in amounts or sum(amounts.values()) != 2 * amounts[head]:
                problems.append(f"{code}: the parts of split {head} do not add up")
                continue
            open_now = conn.execute(
                select(func.coalesce(func.sum(d.amount_open), 0)).where(
                    d.biller_code == UTIL, d.account.in_(seeded.accounts[code])
                )
            ).scalar_one()
            expected = seeded.totals[code] if code in results.reversed else 0
            if open_now != expected:
                problems.append(f"{code}: {open_now} open, {expected} expected")
    return problems[:20]


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.split_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--db", required=True, help="the switch's database URL (seeded, checked)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8585, help="the switch's HOST channel")
    parser.add_argument("--codes", type=int, default=1000, help="payer codes, each paid once")
    parser.add_argument("--accounts", type=int, default=3, help="UTIL01 accounts per code")
    parser.add_argument("--debts", type=int, default=2, help="debts per account")
    parser.add_argument("--debt", type=int, default=1000, help="each debt, minor units")
    parser.add_argument("--online", action="store_true", help="plus one TEL01 account a code")
    parser.add_argument("--connections", type=int, default=4, help="one request in flight each")
    parser.add_argument("--reverse", type=int, default=0, help="reverse every Nth approved split")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds per answer")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    limits = [
        (args.codes, 1, 1_000_000),
        (args.accounts, 1, payer_codes.MAX_ACCOUNTS - (1 if args.online else 0)),
        (args.debts, 1, 12),
        (args.debt, 1, 10**9),
        (args.connections, 1, 256),
    ]
    if any(not low <= value <= high for value, low, high in limits) or args.reverse < 0:
        print("split_bench: an argument is out of its range (see --help)", file=sys.stderr)
        return 2
    engine = make_engine(args.db)
    try:
        seeded = seed(engine, args.codes, args.accounts, args.debts, args.debt, args.online)
        results, seconds = drive(args, seeded)
        problems = check(engine, seeded, results)
    finally:
        engine.dispose()
    done = sum(results.codes.values())
    figures = {
        "payments": done,
        "seconds": round(seconds, 3),
        "rate": round(done / seconds, 1) if seconds else 0.0,
        "p50_ms": round(1000 * _percentile(results.latencies, 0.5), 2),
        "p99_ms": round(1000 * _percentile(results.latencies, 0.99), 2),
        "inquiry_p50_ms": round(1000 * _percentile(results.inquiries, 0.5), 2),
        "codes": dict(results.codes),
        "reversed": len(results.reversed),
        "errors": dict(results.errors),
        "debts_per_split": args.accounts * args.debts + (1 if args.online else 0),
        "ledger_problems": problems,
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
