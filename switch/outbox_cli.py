"""``billswitch outbox``: the operator's view of what online billers must still be told.

``list`` shows the queue (pending and parked rows by default: what is not done);
``retry ID`` sends a parked row back to the delivery loop, due at once. A row is
parked when its biller refused it (a 4xx: unknown account, a 409, a payment it
holds reversed) or it could not be told at all (a partial reversal): repetition
does not fix that, so after looking (and fixing what the reason names, at the
biller or here) an operator retries it. Pending rows need nothing: the delivery
loop has them; done rows are history. Running nodes pick a retried row up at
their next poll. The row keeps its attempt count (the claim's token: a delivery
still finishing an old attempt must not mistake the row for its own).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select, update

from switch.ledger import outbox
from switch.ledger import schema as s

_o = s.outbox.c
STATES = (outbox.PENDING, outbox.PARKED, outbox.DONE)
LIST_MAX = 1000  # rows shown, oldest first


class OutboxCommandError(Exception):
    """A row that does not exist or cannot be retried: one line."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    box = sub.add_parser(
        "outbox", help="what online billers must still be told: list it, retry a parked row"
    )
    actions = box.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list",
        help="rows not done (pending and parked), oldest first, with why each last failed",
        epilog="example: billswitch outbox list --state parked --home /var/lib/billswitch",
    )
    listing.add_argument(
        "--state",
        choices=(*STATES, "all"),
        help="only rows in this state (default: pending and parked)",
    )
    retry = actions.add_parser(
        "retry",
        help="a parked row back to the delivery loop, due at once",
        epilog="example: billswitch outbox retry 42",
    )
    retry.add_argument("id", type=_row_id, help="the row's id, as `outbox list` shows it")
    return box


def _row_id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a row id is a whole number from 1, not {text!r}")
    return int(text)


def run(args: argparse.Namespace, engine: Engine, now: datetime | None = None) -> int:
    now = now or datetime.now(UTC)
    with engine.begin() as conn:
        if args.action == "list":
            print("\n".join(list_rows(conn, args.state, now)) or "no outbox rows")
            return 0
        retry(conn, args.id, now)
    print(f"outbox row {args.id}: pending, due now; running nodes deliver it at their next poll")
    return 0


_LIST = "{id:>8}  {biller:8s}  {action:7s}  {state:7s}  {attempts:>8}  {age:>8}  {pid:40s}  {why}"


def list_rows(conn: Connection, state: str | None, now: datetime) -> list[str]:
    """A header and one line per row (at most ``LIST_MAX``, oldest first); none if empty."""
    query = select(s.outbox).order_by(_o.created_at, _o.id).limit(LIST_MAX)
    if state != "all":
        query = query.where(_o.state.in_([state] if state else [outbox.PENDING, outbox.PARKED]))
    rows = conn.execute(query).all()
    if not rows:
        return []
    head = _LIST.format(
        id="id", biller="biller", action="action", state="state", attempts="attempts",
        age="age", pid="payment id", why="last error",
    )  # fmt: skip
    lines = [head]
    for r in rows:
        lines.append(
            _LIST.format(
                id=r.id,
                biller=r.biller_code,
                action=r.action,
                state=r.state,
                attempts=r.attempts,
                age=_age(now - _aware(r.created_at)),
                pid=r.payment_id,
                why=r.last_error or "-",
            )  # fmt: skip
        )
    if len(rows) == LIST_MAX:
        lines.append(f"(the oldest {LIST_MAX} shown; --state narrows the list)")
    return lines


def retry(conn: Connection, row_id: int, now: datetime) -> None:
    """A parked row pending again, due now; any other row is an error saying why."""
    found = conn.execute(select(_o.state).where(_o.id == row_id)).scalar()
    if found is None:
        raise OutboxCommandError(f"outbox row {row_id} does not exist")
    if found != outbox.PARKED:
        why = {
            outbox.PENDING: "the delivery loop has it already",
            outbox.DONE: "its biller acknowledged it",
        }.get(found, "only parked rows are retried")
        raise OutboxCommandError(f"outbox row {row_id} is {found}, not parked: {why}")
    changed = conn.execute(
        update(s.outbox)
        .where(_o.id == row_id, _o.state == outbox.PARKED)
        .values(state=outbox.PENDING, next_at=now, claimed_until=None, updated_at=now)
    )
    if changed.rowcount != 1:  # changed by another command meanwhile
        raise OutboxCommandError(f"outbox row {row_id} changed meanwhile: list it again")


def _age(delta) -> str:  # type: ignore[no-untyped-def]
    seconds = max(0, int(delta.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _aware(value: datetime) -> datetime:
    """SQLite gives times back naive (they were stored as UTC)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def fail(message: str) -> int:
    print(f"billswitch outbox: {message}", file=sys.stderr)
    return 2
