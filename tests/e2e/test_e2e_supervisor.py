"""The supervisor of worker processes when a worker cannot start again (issue 8, item 12).

Real processes and a real cause: after the switch is up, the database loses
a table every worker reads when it starts (as a botched migration would);
the running workers go on, but a worker started again exits at once. The
supervisor must back off, then give up and exit non-zero (so systemd sees
it) instead of restarting forever; and a worker whose start hangs (waiting
for a lock) must not keep SIGTERM waiting.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from e2e_support import backend_url, started
from sqlalchemy import create_engine, text

from tests.conftest import BACKENDS, postgres_schema_url
from tests.switch_process import SwitchProcess

WORKERS = ["--workers", "2"]
WAIT = 120.0  # generous: five backed-off restarts take about 15 s plus their starts


def _workers_of(proc: SwitchProcess) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(proc.proc.pid)], capture_output=True, text=True)
    return sorted(int(pid) for pid in out.stdout.split())


def _eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_that_keeps_failing_makes_the_supervisor_give_up(
    backend: str,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    for url in backend_url(backend, tmp_path):
        with started(tmp_path, url, args=WORKERS) as proc:
            first = _workers_of(proc)
            assert len(first) == 2
            engine = create_engine(url)
            with engine.begin() as conn:  # workers read billers when they start
                conn.execute(text("ALTER TABLE billers RENAME TO billers_gone"))
            engine.dispose()
            os.kill(first[0], signal.SIGKILL)
            try:
                code = proc.proc.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                raise AssertionError("the supervisor restarts a failing worker forever") from None
            assert code == 1
            log = proc.log_text()
            assert "giving up" in log
            delays = [float(d) for d in re.findall(r"starting it again.*?delay=([\d.]+)", log)]
            assert delays == [1.0, 2.0, 4.0, 8.0]  # backed off, then gave up at the fifth
            assert not [pid for pid in first if _alive(pid)]  # the others were stopped


@pytest.mark.postgres
def test_sigterm_during_a_hanging_worker_start_is_honoured_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: a lock makes a worker's start wait (SQLite's WAL readers never wait)."""
    for url in postgres_schema_url():
        # No periodic re-read of billers: the running worker must not wait for the lock too.
        with started(tmp_path, url, args=WORKERS, top_config="reference_refresh = 3600") as proc:
            first = _workers_of(proc)
            engine = create_engine(url)
            try:
                with engine.connect() as lock:
                    lock.execute(text("LOCK TABLE billers IN ACCESS EXCLUSIVE MODE"))
                    os.kill(first[0], signal.SIGKILL)
                    _eventually(
                        lambda eng=engine: _lock_waiters(eng) > 0, "a new worker waits for the lock"
                    )
                    proc.proc.send_signal(signal.SIGTERM)
                    try:
                        # Generous, but below the 60 s a start may take before it is given up.
                        code = proc.proc.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        raise AssertionError("SIGTERM waited for a worker's start") from None
                    assert code == 0
                    lock.rollback()
            finally:
                engine.dispose()


def _lock_waiters(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'billers'::regclass"
            )
        ).scalar_one()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return not stat.read().split(") ")[1].startswith("Z")
    except FileNotFoundError:
        return False
