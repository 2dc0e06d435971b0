"""``billswitch outbox`` (issue 11): the queue of what online billers must still be told,
and a parked row sent back to the delivery loop; every mistake is one line naming it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog
from sqlalchemy import select, update

from switch.cli import main
from switch.ledger import outbox
from switch.ledger import schema as s
from switch.ledger.database import make_engine, migrate

_o = s.outbox.c
EARLIER = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def queue(db_url: str) -> str:
    """A migrated database whose outbox holds a pending, a parked and a done row."""
    engine = make_engine(db_url)
    migrate(engine)
    with engine.begin() as conn:
        outbox.enqueue(
            conn,
            [
                outbox.reverse("TEL01", "P-PENDING"),
                outbox.reverse("TEL01", "P-PARKED"),
                outbox.reverse("PWR01", "P-DONE"),
            ],
            EARLIER,
        )
        conn.execute(
            update(s.outbox)
            .where(_o.payment_id == "P-PARKED")
            .values(state="parked", attempts=3, last_error="Conflict (05): HTTP 409 conflict")
        )
        conn.execute(update(s.outbox).where(_o.payment_id == "P-DONE").values(state="done"))
    engine.dispose()
    return db_url


def _run(url: str, home: Path, capsys: pytest.CaptureFixture[str], *args: str):  # type: ignore[no-untyped-def]
    capsys.readouterr()
    code = main(["outbox", *args, "--db", url, "--home", str(home)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _id(url: str, payment_id: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(select(_o.id).where(_o.payment_id == payment_id)).scalar_one()
    finally:
        engine.dispose()


def _state(url: str, row_id: int) -> tuple[str, int, datetime]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(_o.state, _o.attempts, _o.next_at).where(_o.id == row_id)
            ).one()
    finally:
        engine.dispose()
    at = row.next_at if row.next_at.tzinfo else row.next_at.replace(tzinfo=UTC)
    return row.state, row.attempts, at


def test_list_shows_what_is_not_done_and_filters_by_state(
    queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = _run(queue, tmp_path, capsys, "list")
    assert (code, err) == (0, "")
    head, *rows = out.splitlines()
    assert head.split()[:5] == ["id", "biller", "action", "state", "attempts"]
    assert [r.split()[6] for r in rows] == ["P-PENDING", "P-PARKED"]
    assert "P-DONE" not in out and "HTTP 409 conflict" in out
    code, out, _ = _run(queue, tmp_path, capsys, "list", "--state", "parked")
    assert code == 0 and "P-PARKED" in out and "P-PENDING" not in out
    code, out, _ = _run(queue, tmp_path, capsys, "list", "--state", "all")
    assert code == 0 and all(p in out for p in ("P-PENDING", "P-PARKED", "P-DONE"))


def test_retry_sends_a_parked_row_back_due_now(
    queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parked = _id(queue, "P-PARKED")
    before = datetime.now(UTC)
    code, out, err = _run(queue, tmp_path, capsys, "retry", str(parked))
    assert (code, err) == (0, "")
    assert f"outbox row {parked}: pending" in out
    state, attempts, due = _state(queue, parked)
    assert (state, attempts) == ("pending", 3)  # the claim's token is kept
    assert due >= before.replace(microsecond=0)
    code, _, err = _run(queue, tmp_path, capsys, "retry", str(parked))
    assert code == 2 and "is pending, not parked" in err


@pytest.mark.parametrize(
    ("which", "says"),
    [
        ("P-DONE", "is done, not parked: its biller acknowledged it"),
        ("P-PENDING", "is pending, not parked: the delivery loop has it already"),
        ("999999", "outbox row 999999 does not exist"),
    ],
)
def test_retry_refuses_what_is_not_parked_in_one_line(
    queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], which: str, says: str
) -> None:
    row = which if which.isdigit() else str(_id(queue, which))
    code, out, err = _run(queue, tmp_path, capsys, "retry", row)
    assert code == 2 and out == ""
    assert err.startswith("billswitch outbox: ") and says in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_row_id_that_is_no_number_is_a_usage_error(
    queue: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _run(queue, tmp_path, capsys, "retry", "P-PARKED")
    assert exited.value.code == 2
    assert "a row id is a whole number from 1, not 'P-PARKED'" in capsys.readouterr().err
