"""Request rows expire after ``[ledger] request_retention_days`` (issue 8 item 9b), purged
by a running switch off the hot path; a newer request keeps being recognised.

DE 7 has no year: an identity stored for a year would make next year's transaction with
the same STAN and DE 7 a duplicate (94). Past the retention the old row is gone, and the
new transaction is approved.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from e2e_support import Ledger, backend_url, call, sign_on_all, started
from sqlalchemy import func, insert, select

from switch.ledger import schema as s
from switch.ledger.retention import CHUNK
from tests.client import IsoClient, payment
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

PURGE = """
[ledger]
request_retention_days = 35
purge_every = 0.3
"""
WAIT = 60.0  # seconds: bound of the wait for the purge


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("retention")
    for url in backend_url(request.param, home):
        with started(home, url, PURGE) as proc:
            sign_on_all(proc)
            yield proc


def _old_rows(ledger: Ledger, n: int, created: datetime) -> list[tuple[str, str]]:
    """``n`` request rows of ATM00001 stored at ``created``: (STAN, DE 7) of each."""
    keys = [(f"{900000 + i:06d}", "0101120000") for i in range(n)]
    row = {"acquirer_id": "100001", "terminal_id": "ATM00001", "mti": "0200"}
    with ledger.engine.begin() as conn:
        conn.execute(
            insert(s.requests),
            [
                {
                    **row, "stan": stan, "transmitted": de7, "request_hash": "0" * 64,
                    "response_code": "00", "response": "{}", "payment_id": None,
                    "created_at": created,
                }
                for stan, de7 in keys
            ],
        )  # fmt: skip
    return keys


def _older_than(ledger: Ledger, moment: datetime) -> int:
    with ledger.engine.connect() as conn:
        return conn.execute(
            select(func.count()).select_from(s.requests).where(s.requests.c.created_at < moment)
        ).scalar_one()


def test_expired_request_rows_are_purged_and_their_identity_is_free_again(
    atm: IsoClient, ledger: Ledger
) -> None:
    account = ledger.account(100000)
    recent = payment(account, 1000)
    first = call(atm, recent)
    now = datetime.now(UTC)
    keys = _old_rows(ledger, 2 * CHUNK + 5, now - timedelta(days=40))
    deadline = time.monotonic() + WAIT
    while _older_than(ledger, now - timedelta(days=35)):
        assert time.monotonic() < deadline, "expired request rows were never purged"
        time.sleep(0.1)
    # the recent request is still known: its retransmission gets the stored answer
    assert call(atm, recent) == first
    assert len(ledger.requests(recent["11"], recent["7"])) == 1
    # a new transaction with the identity of an expired row is not a duplicate (no 94)
    stan, de7 = keys[0]
    again = payment(account, 2000)
    again.update({"11": stan, "7": de7})
    call(atm, again, "00")
    assert ledger.due(account) == 100000 - 3000
