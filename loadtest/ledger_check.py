"""Does the switch's ledger agree with what the generator was told?

A load test that only counts 00s would miss the failures that matter most in
a payment switch: an approval that was never written, a payment written twice,
a decline that still moved money, an unbalanced journal. So after the run the
generator reads the switch's database and compares:

- every payment approved to us (RN in DE 48 = payment id) exists, for our
  terminal, with the amount we sent; reversed exactly when we saw the
  reversal approved;
- no other payment of the run (``created_at`` >= run start, our acquirer and
  terminals) exists, unless the switch reversed it in full or our request
  timed out (then the outcome is genuinely unknown to us: a warning);
- every journal row of the run has entries summing to zero, and every
  approved payment has journal rows;
- on-us card payments (``--on-us``) are ordinary payments rows whose debit
  leg is the card's wallet instead of the acquirer receivable: each approved
  payment's debit must be on a wallet account (``--cards``: how many distinct
  wallets paid is reported too).

Rows are found by time and terminal, so another client using the same
terminals during the run shows up as unexplained payments.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, create_engine, func, select

from switch.ledger.schema import accounts, entries, journal, payments

CHUNK = 500
SHOWN_PROBLEMS = 20


@dataclass
class LedgerFacts:
    """What the generator saw during the run that the ledger must reflect."""

    started: datetime
    acquirer: str
    terminals: set[str]
    approved: dict[int, int] = field(default_factory=dict)  # payment id -> amount
    reversed: set[int] = field(default_factory=set)
    in_doubt_rrns: set[str] = field(default_factory=set)
    in_doubt_reversals: set[int] = field(default_factory=set)
    missing_rn: int = 0
    on_us: bool = False  # payments paid from an on-us card's wallet


@dataclass(frozen=True)
class PaymentRow:
    id: int
    acquirer_id: str
    terminal_id: str
    amount: int
    reversed_amount: int
    rrn: str | None


@dataclass
class LedgerReport:
    payments: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    from_wallet: int | None = None  # on-us runs: approved payments debited to a wallet
    wallets: int | None = None  # on-us runs: distinct wallets those debits were on

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, object]:
        result: dict[str, object] = {
            "ok": self.ok,
            "payments": self.payments,
            "problems": self.problems,
            "warnings": self.warnings,
        }
        if self.from_wallet is not None:
            result["from_wallet"] = self.from_wallet
            result["wallets"] = self.wallets
        return result

    def lines(self) -> list[str]:
        """Human summary: one OK line, or the first discrepancies."""
        if self.ok:
            wallet = (
                ""
                if self.from_wallet is None
                else f", {self.from_wallet} from a wallet ({self.wallets} wallets)"
            )
            head = [f"ledger check: OK ({self.payments} payments{wallet})"]
        else:
            head = [f"ledger check: FAILED ({len(self.problems)} discrepancies)"]
            head += [f"  {p}" for p in self.problems[:SHOWN_PROBLEMS]]
            if len(self.problems) > SHOWN_PROBLEMS:
                head.append(f"  ... and {len(self.problems) - SHOWN_PROBLEMS} more")
        return head + [f"  warning: {w}" for w in self.warnings]


def check_ledger(url: str, facts: LedgerFacts) -> LedgerReport:
    """Read the switch's database at ``url`` and compare it with ``facts``."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            by_id = _payments_by_id(conn, facts.approved)
            run_rows = _run_payments(conn, facts)
            unbalanced = _unbalanced_journals(conn, facts.started)
            journaled = _journaled_payments(conn, facts.approved)
            from_wallet = _wallet_debited(conn, facts.approved) if facts.on_us else {}
    finally:
        engine.dispose()
    report = compare(facts, by_id, run_rows)
    report.problems += [f"journal {jid} entries sum to {total}, not 0" for jid, total in unbalanced]
    report.problems += [
        f"payment {pid} approved but has no journal rows"
        for pid in sorted(set(facts.approved) - journaled)
        if pid in by_id
    ]
    if facts.on_us:
        report.from_wallet = len(from_wallet)
        report.wallets = len(set(from_wallet.values()))
        report.problems += [
            f"on-us payment {pid} was not debited to a wallet"
            for pid in sorted(journaled - set(from_wallet))
        ]
    return report


def compare(
    facts: LedgerFacts, by_id: dict[int, PaymentRow], run_rows: list[PaymentRow]
) -> LedgerReport:
    """The payment-level comparison, without the database (unit-testable)."""
    report = LedgerReport(payments=len(facts.approved))
    if facts.missing_rn:
        report.problems.append(f"{facts.missing_rn} approved payments carried no RN in DE 48")
    for pid, amount in sorted(facts.approved.items()):
        report.problems += _approved_problems(facts, pid, amount, by_id.get(pid))
    for row in run_rows:
        if row.id not in facts.approved:
            _classify_extra(facts, row, report)
    return report


def _approved_problems(
    facts: LedgerFacts, pid: int, amount: int, row: PaymentRow | None
) -> list[str]:
    if row is None:
        return [f"payment {pid} approved (RN) but not in the payments table"]
    problems = []
    if row.acquirer_id != facts.acquirer or row.terminal_id not in facts.terminals:
        problems.append(f"payment {pid} belongs to {row.acquirer_id}/{row.terminal_id!r}")
    if row.amount != amount:
        problems.append(f"payment {pid} amount {row.amount}, approved for {amount}")
    if pid in facts.reversed and row.reversed_amount != row.amount:
        problems.append(f"payment {pid} reversal approved, reversed_amount {row.reversed_amount}")
    unreversed = pid not in facts.reversed and pid not in facts.in_doubt_reversals
    if unreversed and row.reversed_amount:
        problems.append(f"payment {pid} reversed by {row.reversed_amount} with no approved 0400")
    return problems


def _classify_extra(facts: LedgerFacts, row: PaymentRow, report: LedgerReport) -> None:
    """A run payment we never saw approved: fine if fully reversed, doubtful if we timed out."""
    if row.amount and row.reversed_amount == row.amount:
        return
    if row.rrn in facts.in_doubt_rrns:
        report.warnings.append(f"payment {row.id} (RRN {row.rrn}) exists; our request timed out")
        return
    report.problems.append(
        f"payment {row.id} (RRN {row.rrn}, amount {row.amount}) was never approved to us"
    )


def _chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(ids)
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]


_COLUMNS = (
    payments.c.id,
    payments.c.acquirer_id,
    payments.c.terminal_id,
    payments.c.amount,
    payments.c.reversed_amount,
    payments.c.rrn,
)


def _payments_by_id(conn: Connection, ids: Iterable[int]) -> dict[int, PaymentRow]:
    """Look approved payments up by id: found even if their created_at is off."""
    found: dict[int, PaymentRow] = {}
    for chunk in _chunks(ids):
        for row in conn.execute(select(*_COLUMNS).where(payments.c.id.in_(chunk))):
            found[row.id] = PaymentRow(*row)
    return found


def _run_payments(conn: Connection, facts: LedgerFacts) -> list[PaymentRow]:
    query = select(*_COLUMNS).where(
        payments.c.created_at >= facts.started,
        payments.c.acquirer_id == facts.acquirer,
        payments.c.terminal_id.in_(sorted(facts.terminals)),
    )
    return [PaymentRow(*row) for row in conn.execute(query)]


def _unbalanced_journals(conn: Connection, started: datetime) -> list[tuple[int, int]]:
    total = func.coalesce(func.sum(entries.c.amount), 0)
    query = (
        select(journal.c.id, total)
        .select_from(journal.outerjoin(entries, entries.c.journal_id == journal.c.id))
        .where(journal.c.created_at >= started)
        .group_by(journal.c.id)
        .having(total != 0)
    )
    return [(row[0], row[1]) for row in conn.execute(query)]


def _wallet_debited(conn: Connection, ids: Iterable[int]) -> dict[int, str]:
    """Payments whose payment journal row debits a wallet account -> that wallet."""
    found: dict[int, str] = {}
    source = journal.join(entries, entries.c.journal_id == journal.c.id).join(
        accounts, accounts.c.code == entries.c.account_code
    )
    for chunk in _chunks(ids):
        query = (
            select(journal.c.payment_id, accounts.c.code)
            .select_from(source)
            .where(
                journal.c.payment_id.in_(chunk),
                journal.c.kind == "payment",
                entries.c.amount > 0,
                accounts.c.kind == "wallet",
            )
            .distinct()
        )
        found.update((row[0], row[1]) for row in conn.execute(query))
    return found


def _journaled_payments(conn: Connection, ids: Iterable[int]) -> set[int]:
    found: set[int] = set()
    for chunk in _chunks(ids):
        query = select(journal.c.payment_id).where(journal.c.payment_id.in_(chunk)).distinct()
        found.update(row[0] for row in conn.execute(query))
    return found
