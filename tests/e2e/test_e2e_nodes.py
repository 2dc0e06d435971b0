"""Two switch nodes on one database: money never moves twice, whichever node gets a request.

Both nodes share the request-hashing key (spec section 6; switch/cardholder.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from e2e_support import Nodes, answered, by_stan, call, read_all, receipt, two_nodes

from iso.dialect import decode_message, encode_message
from iso.framing import BINARY2, encode_frame
from tests.client import payment, reversal
from tests.conftest import BACKENDS
from tests.ledger.ledger_support import assert_invariants


@pytest.fixture(scope="module", params=BACKENDS)
def nodes(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Nodes]:  # type: ignore[no-untyped-def]
    with two_nodes(tmp_path_factory.mktemp("nodes"), request.param) as nodes:
        yield nodes


def test_the_same_payment_on_two_nodes_moves_money_once(nodes: Nodes) -> None:
    a, b, ledger = nodes
    account = ledger.account(1_000_000)
    requests = [payment(account, 100 + i) for i in range(40)]
    frames = b"".join(encode_frame(BINARY2, encode_message(r)) for r in requests)
    with a.client("atm") as on_a, b.client("atm") as on_b:
        on_a.send_raw(frames)
        on_b.send_raw(frames)
        raw_a = {decode_message(raw)["11"]: raw for raw in (on_a.recv_raw() for _ in requests)}
        raw_b = {decode_message(raw)["11"]: raw for raw in (on_b.recv_raw() for _ in requests)}
    for request in requests:
        answered(request, decode_message(raw_a[request["11"]]), "00")
        assert raw_a[request["11"]] == raw_b[request["11"]]  # one answer, given twice
    assert sorted(p.amount for p in ledger.payments(account)) == [100 + i for i in range(40)]
    assert ledger.due(account) == 1_000_000 - sum(100 + i for i in range(40))
    assert ledger.unbalanced() == []


def test_a_payment_on_one_node_is_reversed_on_the_other(nodes: Nodes) -> None:
    a, b, ledger = nodes
    account = ledger.account(5000)
    original = payment(account, 3000)
    with a.client("atm") as on_a, b.client("atm") as on_b:
        payment_id = receipt(call(on_a, original))
        assert receipt(call(on_b, original)) == payment_id  # a retransmission to the other node
        call(on_b, reversal(original))
        call(on_a, reversal(original, mti="0420"))
        changed = dict(original, **{"4": "000000000001"})
        call(on_b, changed, "94")
    assert ledger.payment(payment_id).reversed_amount == 3000
    assert ledger.due(account) == 5000


def test_payments_of_one_account_spread_over_two_nodes(nodes: Nodes) -> None:
    a, b, ledger = nodes
    account = ledger.account(10_000)
    requests = [payment(account, 1000) for _ in range(16)]  # only ten fit the debt
    with a.client("atm") as on_a, b.client("atm") as on_b:
        for i, request in enumerate(requests):
            (on_a if i % 2 else on_b).send(request)
        responses = by_stan(read_all(on_a, 8) + read_all(on_b, 8))
    codes = sorted(responses[r["11"]]["39"] for r in requests)
    assert codes == ["00"] * 10 + ["13"] * 6
    assert ledger.due(account) == 0
    assert len(ledger.payments(account)) == 10


def _frames(requests: list[dict[str, str]]) -> bytes:
    return b"".join(encode_frame(BINARY2, encode_message(r)) for r in requests)


def test_reversals_racing_their_originals_on_two_nodes_leave_no_money_moved(
    nodes: Nodes,
) -> None:
    """Spec section 5: whichever node commits first, an original and its reversal net to
    nothing: either the payment is approved and then reversed, or the reversal came
    first and the payment is declined (05)."""
    a, b, ledger = nodes
    account = ledger.account(1_000_000)
    originals = [payment(account, 100 + i) for i in range(30)]
    reversals = [reversal(o, mti="0420") for o in originals]
    with a.client("atm") as on_a, b.client("atm") as on_b:
        on_b.send_raw(_frames(reversals))
        on_a.send_raw(_frames(originals))
        got_b = by_stan(read_all(on_b, len(reversals)))
        got_a = by_stan(read_all(on_a, len(originals)))
    for request in reversals:
        answered(request, got_b[request["11"]], "00")
    codes = [got_a[o["11"]]["39"] for o in originals]
    assert set(codes) <= {"00", "05"}, codes
    paid = ledger.payments(account)
    assert len(paid) == codes.count("00")
    assert all(p.reversed_amount == p.amount for p in paid)
    assert ledger.due(account) == 1_000_000
    with ledger.engine.connect() as conn:
        assert_invariants(conn)


def test_a_payment_and_its_advice_on_two_nodes_pay_once(nodes: Nodes) -> None:
    a, b, ledger = nodes
    account = ledger.account(1_000_000)
    originals = [payment(account, 100 + i) for i in range(30)]
    advices = [dict(o, t="0220") for o in originals]
    with a.client("atm") as on_a, b.client("atm") as on_b:
        on_a.send_raw(_frames(originals))
        on_b.send_raw(_frames(advices))
        got_a = by_stan(read_all(on_a, len(originals)))
        got_b = by_stan(read_all(on_b, len(advices)))
    for original, advice in zip(originals, advices, strict=True):
        paid = answered(original, got_a[original["11"]], "00")
        acknowledged = answered(advice, got_b[advice["11"]], "00")
        assert receipt(paid) == receipt(acknowledged)
        assert paid["38"] == acknowledged["38"]
    assert sorted(p.amount for p in ledger.payments(account)) == [100 + i for i in range(30)]
    assert ledger.due(account) == 1_000_000 - sum(100 + i for i in range(30))
    with ledger.engine.connect() as conn:
        assert_invariants(conn)
