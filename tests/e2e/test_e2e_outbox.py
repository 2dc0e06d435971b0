"""The delivery loop runs in the real switch process: it claims an outbox row through the
read pool, on both backends, and parks one it cannot deliver (a held biller has no API),
with its reason in the row and in the log."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import select

from switch.ledger import outbox
from switch.ledger import schema as s
from tests.switch_process import SwitchProcess

WAIT = 30.0  # seconds: a bound on the wait for the loop, not an assertion on speed


def test_the_switch_delivers_outbox_rows_and_parks_what_no_biller_api_takes(
    switch: SwitchProcess,
) -> None:
    engine = switch.engine()
    try:
        with engine.begin() as conn:
            outbox.enqueue(conn, [outbox.reverse("UTIL01", "E2E-OUTBOX-1")], datetime.now(UTC))
        query = select(s.outbox.c.state, s.outbox.c.last_error).where(
            s.outbox.c.payment_id == "E2E-OUTBOX-1"
        )
        deadline = time.monotonic() + WAIT
        while True:
            with engine.connect() as conn:
                state, error = conn.execute(query).one()
            if state != "pending":
                break
            assert time.monotonic() < deadline, "the outbox row was never delivered"
            time.sleep(0.05)
        assert (state, error) == ("parked", "NotOnline (05): UTIL01 is a held biller")
        assert "outbox row parked" in switch.log_text()
    finally:
        engine.dispose()
