"""A switch whose PostgreSQL goes silent or loses connections at COMMIT, over real TCP.

The switch reaches PostgreSQL through a proxy (tests/pg_proxy.py); terminals
talk to the switch over its ATM channel. Every request must be answered: with
96 within about the deadline while the database is silent, with the stored
00 when a COMMIT landed though its connection was lost, with 96 (and nothing
recorded) when it did not land. Waits are bounded generously, never timed.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_support import Ledger, answered, by_stan, call, read_all, sign_on_all, started

from tests.client import payment
from tests.conftest import postgres_schema_url
from tests.ledger.ledger_support import assert_invariants
from tests.pg_proxy import pg_proxy

CONFIG = """
[ledger]
deadline = 2.0
"""


@pytest.mark.postgres
def test_postgres_failures_are_answered_truthfully_within_the_deadline(tmp_path: Path) -> None:
    for url in postgres_schema_url():
        with pg_proxy() as proxy, started(tmp_path, proxy.url(url), CONFIG) as switch:
            sign_on_all(switch)
            ledger = Ledger(url)
            try:
                with switch.client("atm", timeout=30) as atm:
                    account = ledger.account(100_000)
                    call(atm, payment(account, 100))

                    proxy.blackhole()  # the host goes silent, connections stay open
                    silent = [payment(account, 200 + i) for i in range(3)]
                    for request in silent:
                        atm.send(request)
                    responses = by_stan(read_all(atm, len(silent)))
                    for request in silent:
                        answered(request, responses[request["11"]], "96")
                    proxy.heal()
                    call(atm, payment(account, 300))

                    proxy.cut_commits(after=True)  # lands, but the switch loses the answer
                    landed = call(atm, payment(account, 400))

                    proxy.cut_commits(after=False, times=None)  # never lands
                    lost = payment(account, 500)
                    call(atm, lost, "96")
                    proxy.heal()
                    call(atm, payment(account, 600))

                assert sorted(p.amount for p in ledger.payments(account)) == [100, 300, 400, 600]
                assert ledger.due(account) == 100_000 - 1400
                for request in [*silent, lost]:
                    assert ledger.requests(request["11"], request["7"]) == []
                stored = ledger.requests(landed["11"], landed["7"])
                assert [row.response_code for row in stored] == ["00"]
                with ledger.engine.connect() as conn:
                    assert_invariants(conn)
            finally:
                ledger.close()
