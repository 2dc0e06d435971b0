"""A biller and an acquirer added to the database while two switch nodes run can be paid at
once, on either node: their ledger accounts come into being on first use (issue 8 item 7).

Before, accounts were made only at start-up: the payment's journal entries named an
account that did not exist, the batch failed on the foreign key, was re-run order by order
and the payment was answered 96.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from e2e_support import Ledger, Nodes, call, receipt, two_nodes
from sqlalchemy import insert, select

from switch.ledger import accounts as acc
from switch.ledger import schema as s
from tests.client import IsoClient, bill_data, inquiry, network, payment
from tests.conftest import BACKENDS
from tests.ledger.ledger_support import assert_invariants
from tests.switch_process import SwitchProcess

REFRESH = "reference_refresh = 0.3  # seconds: the new parties reach the cache quickly\n"
WAIT = 60.0  # seconds: bound of every wait for the switch to see the new rows

NEW_ACQ, NEW_ATM = "300003", "ATM30001"
NEW_BILLER, NEW_ACCOUNT = "NEWB01", "N-0001"


@pytest.fixture(scope="module", params=BACKENDS)
def nodes(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Nodes]:  # type: ignore[no-untyped-def]
    with two_nodes(tmp_path_factory.mktemp("added"), request.param, REFRESH, REFRESH) as nodes:
        yield nodes


def _add_parties(ledger: Ledger) -> None:
    """What an operator does while the switch runs: a new biller with a customer owing
    30000 in two periods, and a new acquirer with one ATM."""
    with ledger.engine.begin() as conn:
        conn.execute(insert(s.acquirers).values(id=NEW_ACQ, name="New Bank", status="active"))
        conn.execute(
            insert(s.terminals).values(
                acquirer_id=NEW_ACQ,
                terminal_id=NEW_ATM,
                channel="ATM",
                merchant_id=None,
                status="active",
            )
        )
        conn.execute(
            insert(s.billers).values(
                code=NEW_BILLER,
                name="New Biller",
                kind="held",
                currency="944",
                min_amount=1,
                max_amount=None,
                partial_allowed=True,
                overpay_allowed=False,
                fee_fixed=0,
                settlement_account=None,
                status="active",
            )
        )
        conn.execute(
            insert(s.customers).values(biller_code=NEW_BILLER, account=NEW_ACCOUNT, name="New P.")
        )
        conn.execute(
            insert(s.debts),
            [
                {
                    "biller_code": NEW_BILLER,
                    "account": NEW_ACCOUNT,
                    "period": period,
                    "invoice": None,
                    "amount_original": 15000,
                    "amount_open": 15000,
                }
                for period in ("202610", "202611")
            ],
        )


def _until(check, what: str):  # type: ignore[no-untyped-def]
    """Poll ``check()`` until it returns a true value (the reference refresh is periodic)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"the switch never saw {what}")


def _knows_the_new_parties(node: SwitchProcess) -> None:
    """Wait until ``node``'s reference cache has the new terminal (sign-on 00) and biller
    (an inquiry that is not 92), then leave the terminal signed on."""
    with node.client("atm") as client:
        _until(
            lambda: client.call(network("001", NEW_ATM, NEW_ACQ))["39"] == "00",
            "the new terminal",
        )
        _until(
            lambda: client.call(inquiry(NEW_ACCOUNT, biller=NEW_BILLER))["39"] == "00",
            "the new biller",
        )


def _pay(client: IsoClient, amount: int, **kw: str) -> int:
    """Pay the new biller's customer (00 expected); returns DE 48 DU, what is left due."""
    response = call(client, payment(NEW_ACCOUNT, amount, biller=NEW_BILLER, **kw))
    return int(bill_data(response)["DU"])


def test_a_biller_and_acquirer_added_while_running_are_paid_on_every_node(nodes: Nodes) -> None:
    a, b, ledger = nodes
    _add_parties(ledger)
    for node in (a, b):
        _knows_the_new_parties(node)
    with a.client("atm") as on_a, b.client("atm") as on_b:
        # the new biller, paid by a terminal of a known acquirer, then by the new acquirer
        assert _pay(on_b, 1000) == 29000
        assert _pay(on_a, 2000, terminal=NEW_ATM, acquirer=NEW_ACQ) == 27000
        # the new acquirer paying a known biller, then both again on the other node
        util_account = ledger.account(5000)
        response = call(on_b, payment(util_account, 5000, terminal=NEW_ATM, acquirer=NEW_ACQ))
        assert receipt(response) > 0 and ledger.due(util_account) == 0
        assert _pay(on_a, 3000) == 24000
        assert _pay(on_b, 4000, terminal=NEW_ATM, acquirer=NEW_ACQ) == 20000
    new_recv = acc.acquirer_receivable(NEW_ACQ, "944")
    new_payable = acc.biller_payable(NEW_BILLER, "944")
    with ledger.engine.connect() as conn:
        rows = dict(
            conn.execute(
                select(s.accounts.c.code, s.accounts.c.owner).where(
                    s.accounts.c.code.in_([new_recv, new_payable])
                )
            ).all()
        )
        assert rows == {new_recv: NEW_ACQ, new_payable: NEW_BILLER}
        assert_invariants(conn)
        d = s.debts.c
        open_amounts = conn.execute(
            select(d.amount_open).where(d.biller_code == NEW_BILLER).order_by(d.period)
        ).scalars()
        assert list(open_amounts) == [5000, 15000]  # oldest first: 202610 paid 10000
