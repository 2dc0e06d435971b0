"""The switch when things go wrong around it: database failure (96), load shedding (91), Ctrl-C.

Each test starts its own switch, because it breaks or stops it.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e_support import Ledger, answered, call, receipt, sign_on_all, started, writes_blocked
from sqlalchemy import text

from iso.dialect import encode_message
from iso.framing import BINARY2, encode_frame
from tests.client import IsoClient, inquiry, payment, reversal, sign_on
from tests.switch_process import SwitchProcess


@contextmanager
def _switch(home: Path, url: str, extra: str = "") -> Iterator[tuple[SwitchProcess, Ledger]]:
    with started(home, url, extra) as proc:
        sign_on_all(proc)
        ledger = Ledger(url)
        try:
            yield proc, ledger
        finally:
            ledger.close()


@contextmanager
def _table_renamed(ledger: Ledger, table: str) -> Iterator[None]:
    """The ledger loses ``table`` (the database is there, the write cannot happen)."""
    with ledger.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
    try:
        yield
    finally:
        with ledger.engine.begin() as conn:
            conn.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))


def test_96_when_the_ledger_is_unavailable(db_url: str, tmp_path: Path) -> None:
    with _switch(tmp_path, db_url) as (switch, ledger), switch.client("atm") as atm:
        account = ledger.account(5000)
        paid = payment(account, 1000)
        call(atm, paid)
        requests_before = ledger.count("requests")
        failing = [
            payment(account, 2000),
            payment(account, 300, mti="0220"),
            reversal(paid),
            reversal(paid, mti="0420"),
        ]
        with _table_renamed(ledger, "payments"):
            for request in failing:
                response = call(atm, request, "96")
                assert "38" not in response and "48" not in response
        # Nothing of the failed requests was recorded.
        assert ledger.count("requests") == requests_before
        assert [p.amount for p in ledger.payments(account)] == [1000]
        assert ledger.payments(account)[0].reversed_amount == 0
        assert ledger.due(account) == 4000
        for request in failing:
            assert ledger.requests(request["11"], request["7"]) == []
        assert ledger.unbalanced() == []
        # Restored: the same requests go through now, once.
        call(atm, failing[0])
        call(atm, failing[1])
        call(atm, failing[2])
        call(atm, failing[3])
        assert sorted(p.amount for p in ledger.payments(account)) == [300, 1000, 2000]
        assert ledger.due(account) == 5000 - 2000 - 300
        assert switch.proc.poll() is None


def test_91_when_the_ledger_queue_is_full(db_url: str, tmp_path: Path) -> None:
    # A queue of one: with the writer stuck on a lock, at most two payments are accepted
    # (one being written, one queued); every other one is shed at once with 91.
    extra = "[ledger]\nqueue_max = 1\nbatch_max = 1\n"
    with _switch(tmp_path, db_url, extra) as (switch, ledger), switch.client("atm") as atm:
        account = ledger.account(100_000)
        requests = [payment(account, 100 + i) for i in range(6)]
        frames = b"".join(encode_frame(BINARY2, encode_message(r)) for r in requests)
        by_stan = {r["11"]: r for r in requests}
        responses = {}
        with writes_blocked(ledger):
            atm.send_raw(frames)
            for _ in range(4):  # these cannot wait for the writer: they are the shed ones
                response = atm.recv()
                answered(by_stan[response["11"]], response, "91")
                responses[response["11"]] = response
        for _ in range(2):
            response = atm.recv()
            assert response["39"] in ("00", "91"), response
            responses[response["11"]] = response
        assert set(responses) == set(by_stan)
        approved = {s for s, r in responses.items() if r["39"] == "00"}
        assert sorted(p.amount for p in ledger.payments(account)) == sorted(
            int(by_stan[s]["4"]) for s in approved
        )
        for stan in set(by_stan) - approved:
            assert ledger.requests(stan, by_stan[stan]["7"]) == []  # shed: nothing recorded
            call(atm, by_stan[stan])  # and its retransmission goes through
        assert ledger.due(account) == 100_000 - sum(100 + i for i in range(6))


def test_ctrl_c_with_payments_in_flight(db_url: str, tmp_path: Path) -> None:
    """Payments queued for the ledger when Ctrl-C comes are committed and answered.

    The ledger writer is held on a database lock while the payments arrive, so at
    Ctrl-C none of them can have been committed yet: all are in flight.
    """
    connections, per_connection = 4, 100
    # The lock is held on purpose while the test sends and stops: a deadline longer than
    # that keeps the payments waiting for the writer instead of answered 96 on a slow box.
    with _switch(tmp_path, db_url, "[ledger]\ndeadline = 120.0\n") as (switch, ledger):
        clients = [IsoClient(switch.ports["atm"], timeout=30) for _ in range(connections)]
        sent: dict[tuple[str, str], dict[str, str]] = {}
        responses: list[dict[str, str]] = []
        accounts = [ledger.account(10**9) for _ in clients]
        for n, client in enumerate(clients):
            sign_on(client, f"ATM0000{n + 1}")
        try:
            with writes_blocked(ledger):
                for n, (client, account) in enumerate(zip(clients, accounts, strict=True)):
                    terminal = f"ATM0000{n + 1}"
                    requests = [
                        payment(account, 1 + i, terminal=terminal) for i in range(per_connection)
                    ]
                    sent.update({(terminal, r["11"]): r for r in requests})
                    marker = inquiry(account, terminal=terminal)
                    client.send_raw(b"".join(_frame(r) for r in [*requests, marker]))
                    # Frames are taken in order: once the inquiry behind them is answered,
                    # every payment before it is queued for the (blocked) ledger writer.
                    answered(marker, client.recv(), "00")
                switch.proc.send_signal(signal.SIGINT)
                _wait_for_log(switch, "stopping")
                for n, (client, account) in enumerate(zip(clients, accounts, strict=True)):
                    late = payment(account, 5, terminal=f"ATM0000{n + 1}")  # while stopping
                    sent[(late["41"], late["11"])] = late
                    try:
                        client.send(late)
                    except OSError:
                        pass
            for client in clients:  # the lock is gone: the writer drains, then closes
                while True:
                    try:
                        responses.append(client.recv())
                    except ConnectionError:
                        break
            assert switch.proc.wait(timeout=60) == 0
        finally:
            for client in clients:
                client.close()
        assert "Traceback" not in switch.log_text()

        approved = [r for r in responses if r["39"] == "00"]
        codes = Counter(r["39"] for r in responses)
        # every queued payment
        assert len(approved) >= connections * per_connection, (codes, switch.log_text()[-4000:])
        assert {r["39"] for r in responses} <= {"00", "96"}  # 96: arrived while stopping
        for response in responses:
            request = sent[(response["41"], response["11"])]
            rows = ledger.requests(request["11"], request["7"])
            if response["39"] == "00":
                row = ledger.payment(receipt(response))
                assert row is not None, response
                assert (row.amount, row.rrn) == (int(request["4"]), request["37"])
                assert [r.payment_id for r in rows] == [row.id]
            else:
                assert rows == [], response  # a failed payment leaves nothing
        # And nothing was committed without its approval going out.
        assert sorted(receipt(r) for r in approved) == [p.id for p in ledger.payments()]
        assert ledger.unbalanced() == []


def _wait_for_log(switch: SwitchProcess, text_: str) -> None:
    deadline = time.monotonic() + 30  # a bound on the wait, not an assertion on speed
    while text_ not in switch.log_text():
        assert time.monotonic() < deadline, f"{text_!r} never logged"
        assert switch.proc.poll() is None or text_ in switch.log_text()
        time.sleep(0.02)


def _frame(fields: dict[str, str]) -> bytes:
    return encode_frame(BINARY2, encode_message(fields))
