"""The biller server's store on its own: a batch is one commit, its operations savepoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.biller_sim.bodies import PaymentBody
from routing.biller_sim.catalogue import TEL01
from routing.biller_sim.errors import AmountNotAccepted
from routing.biller_sim.server import open_store


def pay(payment_id: str, amount: int) -> PaymentBody:
    return PaymentBody(payment_id, "5550001", amount, "944", "2026-11-21T10:00:00Z", "ATM", None)


def test_a_refused_payment_in_a_batch_undoes_only_itself(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.sqlite3"))
    with store.batch():
        store.pay(TEL01, pay("b-1", 800))
        with pytest.raises(AmountNotAccepted):
            store.pay(TEL01, pay("b-2", 100_000))
        store.pay(TEL01, pay("b-3", 1000))
    store.close()
    again = open_store(str(tmp_path / "s.sqlite3"))  # a new connection sees the commit
    assert [p["payment_id"] for p in again.payments(TEL01)] == ["b-1", "b-3"]
    assert again.fetch(TEL01, "5550001").amount_due == 8800 - 1800


def test_a_batch_that_fails_commits_nothing(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.sqlite3"))
    with pytest.raises(RuntimeError), store.batch():
        store.pay(TEL01, pay("c-1", 800))
        raise RuntimeError("the commit never happens")
    assert store.payments(TEL01) == []
    assert store.fetch(TEL01, "5550001").amount_due == 8800


def test_seeding_again_never_changes_an_account(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.sqlite3"))
    store.pay(TEL01, pay("d-1", 800))
    store.close()
    assert open_store(str(tmp_path / "s.sqlite3")).fetch(TEL01, "5550001").amount_due == 8000
