"""The biller's own truth: accounts and payments in one SQLite file (WAL).

Used from one thread only (the server's store thread), so checking a payment
id and inserting it cannot interleave with another request. Every accepted
payment and reversal is committed before its answer is made. WAL with
``synchronous=NORMAL`` (the default): a commit has been written to the WAL file
(the kernel's page cache) when it returns, so it survives a kill of this
process, SIGKILL included; only an OS crash or power loss can lose the last
commits. ``synchronous="full"`` also fsyncs every commit, for that case.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routing.biller_sim.bodies import PaymentBody
from routing.biller_sim.catalogue import Account, Biller
from routing.biller_sim.errors import Conflict, UnknownAccount, UnknownPayment

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    biller TEXT NOT NULL, account TEXT NOT NULL, name TEXT NOT NULL,
    amount_due INTEGER NOT NULL, period TEXT NOT NULL, invoice TEXT NOT NULL,
    due_date TEXT NOT NULL, closed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (biller, account)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS payments (
    seq INTEGER PRIMARY KEY, biller TEXT NOT NULL, payment_id TEXT NOT NULL,
    content TEXT NOT NULL, account TEXT NOT NULL, amount INTEGER NOT NULL,
    status TEXT NOT NULL, answer TEXT NOT NULL,
    accepted_at TEXT NOT NULL, reversed_at TEXT,
    UNIQUE (biller, payment_id)
);
"""
SYNCHRONOUS = ("normal", "full")


class Store:
    """Accounts and payments of every biller served; one connection, one thread."""

    def __init__(self, path: Path | str, synchronous: str = "normal") -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._db.executescript(SCHEMA)
        self._in_batch = False
        self._next_seq = 1 + (self._db.execute("SELECT MAX(seq) FROM payments").fetchone()[0] or 0)

    def close(self) -> None:
        self._db.close()

    def seed(self, biller: Biller, accounts: Iterable[Account]) -> int:
        """Add the accounts missing from the store; never changes one that is there."""
        rows = [
            (
                biller.code,
                a.account,
                a.name,
                a.amount_due,
                a.period,
                a.invoice,
                a.due_date,
                int(a.closed),
            )
            for a in accounts
        ]
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )
            return self._db.total_changes - before

    def fetch(self, biller: Biller, account: str) -> Account:
        """The account's bill; an open-accounts biller knows every account."""
        found = self._account(biller, account)
        if found is None:
            if not biller.open_accounts:
                raise UnknownAccount(f"{biller.code} has no account {account}")
            return biller.blank_account(account)
        return found

    def pay(self, biller: Biller, payment: PaymentBody) -> dict[str, Any]:
        """Accept a payment once (its id is the idempotency key) and lower what is due."""
        content = payment.content()
        with self._transaction():
            held = self._payment(biller, payment.payment_id)
            if held is not None:
                if held["content"] != content:
                    raise Conflict(f"payment {payment.payment_id} was made with other content")
                return _answer(held)
            account = self._account(biller, payment.account)
            if account is None and not biller.open_accounts:
                raise UnknownAccount(f"{biller.code} has no account {payment.account}")
            biller.check_amount(payment.amount, payment.currency, account)
            return self._accept(biller, payment, content, account)

    def reverse(self, biller: Biller, payment_id: str) -> dict[str, Any]:
        """Reverse an accepted payment once, giving its amount back to the account."""
        with self._transaction():
            held = self._payment(biller, payment_id)
            if held is None:
                raise UnknownPayment(f"{biller.code} never accepted payment {payment_id}")
            if held["status"] != "reversed":
                self._db.execute(
                    "UPDATE payments SET status = 'reversed', reversed_at = ? WHERE seq = ?",
                    (_now(), held["seq"]),
                )
                self._change_due(biller, held["account"], held["amount"])
        return {"status": "reversed"}

    def status(self, biller: Biller, payment_id: str) -> dict[str, Any]:
        held = self._payment(biller, payment_id)
        if held is None:
            raise UnknownPayment(f"{biller.code} never accepted payment {payment_id}")
        answer = json.loads(held["answer"])
        return {
            "payment_id": payment_id,
            "status": held["status"],
            "account": held["account"],
            "amount": held["amount"],
            **{k: answer[k] for k in ("biller_ref", "receipt", "token") if k in answer},
        }

    def payments(self, biller: Biller) -> list[dict[str, Any]]:
        """Every payment the biller holds, in the order it accepted them (the control API)."""
        cursor = self._db.execute(
            "SELECT payment_id, status, account, amount, answer, accepted_at, reversed_at"
            " FROM payments WHERE biller = ? ORDER BY seq",
            (biller.code,),
        )
        return [
            {
                "payment_id": pid,
                "status": status,
                "account": account,
                "amount": amount,
                "biller_ref": json.loads(answer)["biller_ref"],
                "accepted_at": accepted,
                "reversed_at": reversed_at,
            }
            for pid, status, account, amount, answer, accepted, reversed_at in cursor
        ]

    def _accept(
        self, biller: Biller, payment: PaymentBody, content: str, account: Account | None
    ) -> dict[str, Any]:
        seq = self._next_seq
        answer = {"status": "accepted", "biller_ref": f"{biller.code}-{seq:010d}"}
        answer |= biller.extras(seq, payment.payment_id)
        self._db.execute(
            "INSERT INTO payments (seq, biller, payment_id, content, account, amount, status,"
            " answer, accepted_at) VALUES (?, ?, ?, ?, ?, ?, 'accepted', ?, ?)",
            (
                seq,
                biller.code,
                payment.payment_id,
                content,
                payment.account,
                payment.amount,
                json.dumps(answer),
                _now(),
            ),
        )
        if account is not None:
            self._change_due(biller, account.account, -payment.amount)
        self._next_seq = seq + 1
        return answer

    def _change_due(self, biller: Biller, account: str, delta: int) -> None:
        if biller.up_to_due:  # a balance is kept only where payments are limited by it
            self._db.execute(
                "UPDATE accounts SET amount_due = amount_due + ? WHERE biller = ? AND account = ?",
                (delta, biller.code, account),
            )

    def _account(self, biller: Biller, account: str) -> Account | None:
        row = self._db.execute(
            "SELECT account, name, amount_due, period, invoice, due_date, closed FROM accounts"
            " WHERE biller = ? AND account = ?",
            (biller.code, account),
        ).fetchone()
        return None if row is None else Account(*row[:6], closed=bool(row[6]))

    def _payment(self, biller: Biller, payment_id: str) -> dict[str, Any] | None:
        cursor = self._db.execute(
            "SELECT seq, content, account, amount, status, answer FROM payments"
            " WHERE biller = ? AND payment_id = ?",
            (biller.code, payment_id),
        )
        row = cursor.fetchone()
        return (
            None if row is None else dict(zip([d[0] for d in cursor.description], row, strict=True))
        )

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for several operations (group commit): each operation is a
        savepoint inside it, so a refused one undoes only itself. Nothing is answered
        before the batch commits, so "committed before answered" still holds, at one
        commit for many payments instead of one each (a commit is most of a payment's
        cost in the store)."""
        with self._transaction():
            self._in_batch = True
            try:
                yield
            finally:
                self._in_batch = False

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        begin, commit, rollback = (
            ("SAVEPOINT op", "RELEASE op", "ROLLBACK TO op")
            if self._in_batch
            else ("BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
        )
        self._db.execute(begin)
        try:
            yield
        except BaseException:
            self._db.execute(rollback)
            if self._in_batch:
                self._db.execute(commit)  # a savepoint rolled back must still be released
            raise
        self._db.execute(commit)


def _answer(held: dict[str, Any]) -> dict[str, Any]:
    """A repeated payment's answer: the first one, with the payment's status now
    (``reversed`` if it was reversed since)."""
    return json.loads(held["answer"]) | {"status": held["status"]}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")
