"""Benchmark of ``billswitch payments export`` (issue 12): N payments of one day to UTIL01.

    python -m loadtest.payment_files --db postgresql+psycopg2://postgres@127.0.0.1/test
        [--payments 1000000] [--reversals 10000] [--home DIR] [--keep]

Seeds a fresh PostgreSQL schema of the database ``--db`` names (the demo data,
then with server-side ``generate_series``: N debts of UTIL01, N payments of
business day 2026-11-21 each paying one of them, their journal rows; half of
``--reversals`` of those payments reversed the same day, and as many payments
of the day before reversed on 2026-11-21), closes the day, then runs the export
once as a child process (``billswitch payments export``) and reports its wall
time, CPU and peak RSS (the child's ``ru_maxrss``), the file's size and whether
its signature verifies. The schema is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from switch import demo
from switch.debt_signing import public_of, verify
from switch.ledger.accounts import ensure_accounts
from switch.ledger.database import Timeouts, make_engine, migrate
from switch.payment_files import file_path, signature_path
from switch.signing_key import load_or_create_signing_key

DAY = date(2026, 11, 21)
START_ACCOUNT = 3_000_000

# :n payments of :day (ids 1..n), each paying debt i of UTIL01 in full; then :m payments
# of the day before (ids n+1..n+m) on debts of their own. Times spread over the day.
_SEED = """
INSERT INTO debts (id, biller_code, account, period, invoice, amount_original, amount_open, due)
SELECT 1000 + i, 'UTIL01', ({start} + i)::text, '202611', 'INV' || ({start} + i),
       1000 + i % 99000, 0, DATE '2026-11-25'
FROM generate_series(1, :n + :m) AS i;

INSERT INTO payments (id, acquirer_id, terminal_id, channel, biller_code, account, amount, fee,
                      reversed_amount, currency, advice, rrn, auth_code, business_day, created_at)
SELECT i, '100001', 'ATM0000' || (1 + i % 5), 'ATM', 'UTIL01', ({start} + i)::text,
       1000 + i % 99000, 0, 0, '944', false, lpad(i::text, 12, '0'), '000000',
       CASE WHEN i <= :n THEN :day ELSE :day - 1 END,
       CASE WHEN i <= :n THEN :day ELSE :day - 1 END + (i % 86400) * INTERVAL '1 second'
FROM generate_series(1, :n + :m) AS i;

INSERT INTO allocations (payment_id, debt_id, amount, reversed_amount)
SELECT i, 1000 + i, 1000 + i % 99000, 0 FROM generate_series(1, :n + :m) AS i;

INSERT INTO journal (id, kind, payment_id, acquirer_id, amount, currency, business_day,
                     created_at)
SELECT p.id, 'payment', p.id, p.acquirer_id, p.amount, p.currency, p.business_day, p.created_at
FROM payments p;
"""

# Reversed whole: every (n / same)-th payment of the day on the day itself, and every
# payment of the day before on the day.
_REVERSE = """
WITH chosen AS (
    SELECT id FROM payments WHERE id <= :n AND id % :step = 0
    UNION ALL SELECT id FROM payments WHERE id > :n
)
INSERT INTO journal (id, kind, payment_id, acquirer_id, amount, currency, business_day,
                     created_at)
SELECT :base + p.id, 'reversal', p.id, p.acquirer_id, p.amount, p.currency, :day,
       :day + INTERVAL '23 hours'
FROM payments p JOIN chosen c ON c.id = p.id;

UPDATE payments SET reversed_amount = amount
WHERE id > :n OR id % :step = 0;
"""

_CLOSE = """
INSERT INTO business_days (day, state) VALUES (:day - 1, 'closed'), (:day, 'closed'),
    (:day + 1, 'open');
SELECT setval(pg_get_serial_sequence('payments', 'id'), (SELECT max(id) FROM payments));
SELECT setval(pg_get_serial_sequence('journal', 'id'), (SELECT max(id) FROM journal));
SELECT setval(pg_get_serial_sequence('debts', 'id'), (SELECT max(id) FROM debts));
"""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


def seed(engine: Engine, payments: int, reversals: int) -> None:
    """The demo data, then the day's payments and reversals, the day closed, ANALYZEd."""
    same_day = reversals // 2
    earlier = reversals - same_day
    step = max(1, payments // max(1, same_day))
    params = {"n": payments, "m": earlier, "day": DAY, "step": step, "base": 10 * payments}
    with engine.begin() as conn:
        demo.load_demo(conn)
        ensure_accounts(conn)
        for sql in _statements(_SEED.format(start=START_ACCOUNT)):
            conn.execute(text(sql), params)
        if reversals:
            for sql in _statements(_REVERSE):
                conn.execute(text(sql), params)
        for sql in _statements(_CLOSE):
            conn.execute(text(sql), params)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def export_once(url: str, home: Path) -> dict[str, float]:
    """``billswitch payments export`` as a child: wall time, its CPU and peak RSS."""
    env = dict(os.environ, BILLSWITCH_DB=url)
    argv = [sys.executable, "-m", "switch.cli", "payments", "export", "--business-day"]
    began = time.perf_counter()
    done = subprocess.run(
        [*argv, DAY.isoformat(), "--home", str(home)], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"export failed ({done.returncode}): {done.stderr.strip()}")
    print(done.stdout, end="", file=sys.stderr)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "wall_s": wall,
        "user_s": usage.ru_utime,
        "system_s": usage.ru_stime,
        "peak_rss_mb": usage.ru_maxrss / 1024,  # KiB on Linux
    }


def _verifies(path: Path, home: Path) -> bool:
    raw = public_of(load_or_create_signing_key(home))
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return verify(raw, signature_path(path).read_bytes(), data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.payment_files", description=__doc__)
    p.add_argument("--db", required=True, help="a PostgreSQL database (a schema is made in it)")
    p.add_argument("--payments", type=int, default=1_000_000)
    p.add_argument("--reversals", type=int, default=10_000)
    p.add_argument("--home", type=Path, help="the export's home (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the schema and the files")
    args = p.parse_args(argv)
    if make_url(args.db).get_backend_name() != "postgresql":
        p.error("--db: a PostgreSQL URL (the seed uses generate_series)")
    schema = f"payfiles_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(args.db)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = f"{args.db}?options=-csearch_path%3D{schema}"
    home = args.home or Path(tempfile.mkdtemp(prefix="payfiles-bench-"))
    engine = make_engine(url, timeouts=Timeouts().for_maintenance())
    try:
        migrate(engine)
        began = time.perf_counter()
        seed(engine, args.payments, args.reversals)
        print(f"seeded in {time.perf_counter() - began:.1f} s ({schema})", file=sys.stderr)
        engine.dispose()
        figures = export_once(url, home)
        path = file_path(home / "payments", "UTIL01", DAY)
        size = path.stat().st_size
        print(
            f"{args.payments} payments ({args.reversals} reversals), {size / 1e6:.1f} MB:"
            f" wall {figures['wall_s']:.1f} s, user {figures['user_s']:.1f} s,"
            f" system {figures['system_s']:.1f} s, peak RSS {figures['peak_rss_mb']:.0f} MB,"
            f" signature {'verifies' if _verifies(path, home) else 'DOES NOT VERIFY'}"
        )
    finally:
        engine.dispose()
        if not args.keep:
            if args.home is None:
                shutil.rmtree(home, ignore_errors=True)
            with admin.begin() as conn:
                conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
