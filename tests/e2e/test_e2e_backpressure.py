"""A close decided in the middle of a read ends the dispatching (spec section 6, real switch).

A frame the switch cannot answer (no readable MTI) closes the connection;
requests that came in the same read after it must not be taken, since their
answers could never be sent: money would move for a terminal told nothing.
"""

from __future__ import annotations

from e2e_support import Ledger, call, closed_by_switch

from iso.dialect import encode_message
from iso.framing import BINARY2, encode_frame
from tests.client import network, payment
from tests.switch_process import SwitchProcess

UNANSWERABLE = b"\x00\x0cABCD" + bytes(8)  # a frame whose MTI is letters: closed, no 30


def test_nothing_after_a_frame_that_closes_the_connection_is_taken(
    switch: SwitchProcess, ledger: Ledger
) -> None:
    account = ledger.account(1000)
    paid = payment(account, 400)
    with switch.client("atm", timeout=10.0) as atm:
        atm.send_raw(UNANSWERABLE + encode_frame(BINARY2, encode_message(paid)))  # one write
        assert closed_by_switch(atm.sock)
    with switch.client("atm") as fresh:  # the switch is well, and has seen all it will
        call(fresh, network("301"))
    assert ledger.payments(account) == []
    assert ledger.due(account) == 1000
    assert ledger.requests(paid["11"], paid["7"]) == []
