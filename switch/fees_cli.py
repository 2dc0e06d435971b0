"""``billswitch fees``: list, add and remove fee rules (rows of ``fee_rules``).

A rule may name a biller, a channel and an acquirer (each left out: any); the most
specific rule matching a payment prices it (switch/ledger/fees.py, ``PRECEDENCE``).
Running nodes read the rules with the other reference data every
``reference_refresh`` seconds, so a change is served from then on without a restart.
One rule per scope: a second rule of the same biller, channel and acquirer is refused
(remove the first). Amounts are minor units; the percent is of the bill amount, to
0.01 % (a basis point).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from switch.ledger import schema as s
from switch.ledger.fees import CHANNELS, LARGEST_FEE, PAYER, PAYERS, PRECEDENCE
from switch.ledger.sql import is_postgres

_PERCENT = re.compile(r"(\d{1,3})(\.\d{1,2})?%?")
_f = s.fee_rules.c


class FeeCommandError(Exception):
    """A wrong argument, or a rule that cannot be added or removed: one line."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    fees = sub.add_parser(
        "fees", help="list, add and remove fee rules (running nodes pick changes up by themselves)"
    )
    actions = fees.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "list",
        help="every fee rule, most specific first (the order a payment's rule is found in)",
        epilog="example: billswitch fees list --home /var/lib/billswitch",
    )
    add = actions.add_parser(
        "add",
        help="a new fee rule (the most specific rule matching a payment prices it)",
        epilog="examples:\n"
        "  billswitch fees add --biller TEL01 --percent 1 --min 50            (payer, on top)\n"
        "  billswitch fees add --biller UTIL01 --fixed 100 --paid-by biller\n"
        "  billswitch fees add --channel POS --acquirer 100001 --fixed 30 --percent 0.5"
        " --max 500\n"
        "  billswitch fees add --biller MOB01 --channel HOST                  (no fee there)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("--biller", help="biller code (default: any biller)")
    add.add_argument("--channel", help="ATM, POS or HOST (default: any channel)")
    add.add_argument("--acquirer", help="acquirer id, DE 32 (default: any acquirer)")
    add.add_argument("--fixed", type=int, default=0, help="fixed part, minor units (default 0)")
    add.add_argument(
        "--percent",
        default="0",
        help="percent of the amount, to 0.01 (e.g. 1 or 0.25); its part is rounded half up"
        " to a minor unit (default 0)",
    )
    add.add_argument("--min", type=int, default=0, help="smallest fee, minor units (default 0)")
    add.add_argument("--max", type=int, help="largest fee, minor units (default: none)")
    add.add_argument(
        "--paid-by",
        default=PAYER,
        help="payer (on top of the amount, in DE 28) or biller (deducted from what it is"
        " owed); default payer",
    )
    remove = actions.add_parser(
        "remove",
        help="remove a fee rule by its id (as `fees list` shows it)",
        epilog="example: billswitch fees remove 3",
    )
    remove.add_argument("id", type=int, help="the rule's id")
    return fees


def run(args: argparse.Namespace, engine: Engine, refresh: float) -> int:
    """One action; ``refresh`` is the nodes' ``reference_refresh`` (when a change is served)."""
    with engine.begin() as conn:
        if args.action == "list":
            print("\n".join(list_rules(conn)) or "no fee rules: no payment is charged a fee")
            return 0
        if args.action == "add":
            rule_id = add_rule(conn, _rule(args))
            done = f"fee rule {rule_id} added"
        else:
            remove_rule(conn, args.id)
            done = f"fee rule {args.id} removed"
    print(f"{done}; running nodes apply it within {refresh:g} s")
    return 0


def parse_percent(text: str) -> int:
    """``"1"``, ``"0.25"`` or ``"1.5%"`` as basis points (100, 25, 150): 0 to 100 %."""
    if not _PERCENT.fullmatch(text.strip()):
        raise FeeCommandError(f"--percent {text!r}: a percent such as 1 or 0.25 (to 0.01)")
    basis_points = int(Decimal(text.strip().rstrip("%")) * 100)
    if basis_points > 10_000:
        raise FeeCommandError(f"--percent {text}: at most 100")
    return basis_points


def _rule(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "biller_code": args.biller,
        "channel": args.channel.upper() if args.channel else None,
        "acquirer_id": args.acquirer,
        "fixed": args.fixed,
        "percent_bp": parse_percent(args.percent),
        "min_fee": args.min,
        "max_fee": args.max,
        "payer": args.paid_by.lower(),
    }


# What a rule must satisfy: (broken, why), in order; the database checks come after.
_RULES: tuple[tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], str]], ...] = (
    (
        lambda r: r["channel"] is not None and r["channel"] not in CHANNELS,
        lambda r: f"--channel {r['channel']}: one of {', '.join(CHANNELS)}",
    ),
    (
        lambda r: r["payer"] not in PAYERS,
        lambda r: f"--paid-by {r['payer']}: one of {', '.join(PAYERS)}",
    ),
    (
        lambda r: not 0 <= r["fixed"] <= LARGEST_FEE,
        lambda r: f"--fixed {r['fixed']}: 0 to {LARGEST_FEE} (DE 28 has 8 digits)",
    ),
    (
        lambda r: not 0 <= r["min_fee"] <= LARGEST_FEE,
        lambda r: f"--min {r['min_fee']}: 0 to {LARGEST_FEE} (DE 28 has 8 digits)",
    ),
    (
        lambda r: r["max_fee"] is not None and not 0 <= r["max_fee"] <= LARGEST_FEE,
        lambda r: f"--max {r['max_fee']}: 0 to {LARGEST_FEE} (DE 28 has 8 digits)",
    ),
    (
        lambda r: r["max_fee"] is not None and r["max_fee"] < r["min_fee"],
        lambda r: f"--min {r['min_fee']} is above --max {r['max_fee']}",
    ),
)


def add_rule(conn: Connection, rule: dict[str, Any]) -> int:
    """Check ``rule`` and insert it; returns its id."""
    for broken, why in _RULES:
        if broken(rule):
            raise FeeCommandError(why(rule))
    _known(conn, s.billers.c.code, rule["biller_code"], "biller", "billers")
    _known(conn, s.acquirers.c.id, rule["acquirer_id"], "acquirer", None)
    if is_postgres(conn):  # two commands adding one scope at once: the second waits and sees
        conn.exec_driver_sql("LOCK TABLE fee_rules IN SHARE ROW EXCLUSIVE MODE")
    same = select(_f.id).where(
        *(
            _f[column].is_(None) if rule[column] is None else _f[column] == rule[column]
            for column in ("biller_code", "channel", "acquirer_id")
        )
    )
    taken = conn.execute(same).scalar()
    if taken is not None:
        raise FeeCommandError(
            f"fee rule {taken} has this biller, channel and acquirer already"
            f" (remove it first: billswitch fees remove {taken})"
        )
    done = conn.execute(insert(s.fee_rules).values(**rule, created_at=datetime.now(UTC)))
    return int(done.inserted_primary_key[0])  # type: ignore[index]


def _known(conn: Connection, column: Any, value: str | None, what: str, cmd: str | None) -> None:
    if value is None or conn.execute(select(column).where(column == value)).first():
        return
    hint = f" (see: billswitch {cmd} list)" if cmd else ""
    raise FeeCommandError(f"no {what} {value!r}{hint}")


def remove_rule(conn: Connection, rule_id: int) -> None:
    if conn.execute(delete(s.fee_rules).where(_f.id == rule_id)).rowcount == 0:
        raise FeeCommandError(f"no fee rule {rule_id} (see: billswitch fees list)")


_LIST = (
    "{id:>4s}  {biller:8s}  {channel:7s}  {acquirer:11s}  {fixed:>10s}  {percent:>7s}"
    "  {min:>10s}  {max:>10s}  {payer}"
)


def _specificity(row: Any) -> tuple[int, int]:
    named = (row.biller_code is not None, row.acquirer_id is not None, row.channel is not None)
    return (PRECEDENCE.index(named), row.id)


def list_rules(conn: Connection) -> list[str]:
    """A header and one line per rule, most specific first (amounts in minor units);
    none when there are none. ``*`` is any."""
    rows = sorted(conn.execute(select(s.fee_rules)).all(), key=_specificity)
    if not rows:
        return []
    header = _LIST.format(
        id="ID", biller="BILLER", channel="CHANNEL", acquirer="ACQUIRER", fixed="FIXED",
        percent="PERCENT", min="MIN", max="MAX", payer="PAID BY",
    )  # fmt: skip
    return [header] + [
        _LIST.format(
            id=str(r.id),
            biller=r.biller_code or "*",
            channel=r.channel or "*",
            acquirer=r.acquirer_id or "*",
            fixed=str(r.fixed),
            percent=f"{Decimal(r.percent_bp) / 100:.2f}",
            min=str(r.min_fee),
            max="-" if r.max_fee is None else str(r.max_fee),
            payer=r.payer,
        )
        for r in rows
    ]


def fail(message: str) -> int:
    print(f"billswitch fees: {message}", file=sys.stderr)
    return 2
