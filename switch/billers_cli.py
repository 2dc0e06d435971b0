"""``billswitch billers``: list, add and change billers (rows of the ``billers`` table),
and register a held biller's debt-file key (``set-key``).

Running nodes read billers again every ``reference_refresh`` seconds, so what
this command writes is served from then on without a restart; a biller's
ledger accounts are made on its first payment. An online biller's HMAC secret
is read from a file (never a command-line argument: ``ps`` shows those to every
user), stored sealed (switch/sealing.py) and shown only by its check value.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from iso.currency import CURRENCIES, major_units
from switch.debt_signing import BadKey, fingerprint, read_public_key
from switch.ledger import schema as s
from switch.sealing import Sealer, SealError, check_value, home_sealer

KINDS = ("held", "online", "outline")
_CODE = re.compile(r"[A-Za-z0-9]{1,8}")  # DE 48 BL: an..8
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")
MIN_SECRET = 16  # bytes: a shorter HMAC secret is guessable
_b = s.billers.c


class BillerCommandError(Exception):
    """A wrong argument or a biller that does not exist: one line, never a secret."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    billers = sub.add_parser(
        "billers",
        help="list, add and change billers (running nodes pick changes up by themselves)",
    )
    actions = billers.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "list",
        help="every biller: kind, currency, limits, rules, status, API (secret by check value)",
        epilog="example: billswitch billers list --home /var/lib/billswitch",
    )
    add = actions.add_parser(
        "add",
        help="a new biller",
        epilog="examples:\n"
        "  billswitch billers add MOB02 --name 'Mobile Top-up' --kind outline --currency 944"
        " --min 100 --max 5000000\n"
        "  billswitch billers add TEL02 --name 'Telecom' --kind online --currency 944"
        " --url https://api.tel.example/bs --secret-file tel02.secret",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("code", help="biller code (DE 48 BL), 1-8 letters and digits")
    add.add_argument("--name", required=True)
    add.add_argument("--kind", required=True, help="held, online or outline")
    add.add_argument("--currency", required=True, help="ISO 4217 numeric, e.g. 944")
    _settings_options(add)
    change = actions.add_parser(
        "set",
        help="change a biller's settings (only those given)",
        epilog="examples:\n"
        "  billswitch billers set MOB01 --max 10000000\n"
        "  billswitch billers set UTIL01 --exact          (neither partial nor overpayment)\n"
        "  billswitch billers set TEL01 --secret-file tel01.secret --timeout-ms 2000\n"
        "  billswitch billers set UTIL01 --inactive",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    change.add_argument("code", help="the biller's code, as `billers list` shows it")
    change.add_argument("--name")
    change.add_argument("--kind", help="held, online or outline")
    change.add_argument("--currency", help="ISO 4217 numeric, e.g. 944")
    _settings_options(change)
    status = change.add_mutually_exclusive_group()
    status.add_argument("--active", dest="status", action="store_const", const="active")
    status.add_argument(
        "--inactive",
        dest="status",
        action="store_const",
        const="inactive",
        help="stop routing to it (92)",
    )
    set_key = actions.add_parser(
        "set-key",
        help="register a held biller's Ed25519 public key: its debt files must be signed"
        " with the private half (shown by fingerprint in `billers list`)",
        epilog="examples:\n"
        "  billswitch billers set-key UTIL01 util01-public.pem\n"
        "  billswitch billers set-key UTIL01 util01-public.hex   (64 hex digits, the raw key)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    set_key.add_argument("code", help="the biller's code, as `billers list` shows it")
    set_key.add_argument(
        "key_file", type=Path, help="PEM public key (BEGIN PUBLIC KEY) or 64 hex digits"
    )
    return billers


def _settings_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min", type=int, help="smallest amount, minor units (default 1)")
    limit = p.add_mutually_exclusive_group()
    limit.add_argument("--max", type=int, help="largest amount, minor units (default: none)")
    limit.add_argument("--no-max", action="store_true", help="no largest amount")
    p.add_argument(
        "--exact",
        action="store_true",
        help="only the exact amount due (held): the same as --no-partial --no-overpay",
    )
    p.add_argument(
        "--partial",
        action=argparse.BooleanOptionalAction,
        help="payment below the amount due allowed (held; default yes)",
    )
    p.add_argument(
        "--overpay",
        action=argparse.BooleanOptionalAction,
        help="payment above the amount due allowed (held; default no)",
    )
    p.add_argument("--url", help="online: base URL of the biller's API (http:// or https://)")
    p.add_argument(
        "--secret-file",
        type=Path,
        help="online: file holding the HMAC secret (at least 16 bytes; stored sealed)",
    )
    p.add_argument("--timeout-ms", type=int, help="online: wait for an answer (default 3000)")
    p.add_argument(
        "--max-in-flight", type=int, help="online: calls at once; more get 91 (default 64)"
    )


# Option -> column, for every setting both ``add`` and ``set`` take.
_COLUMNS = {
    "name": "name",
    "kind": "kind",
    "currency": "currency",
    "min": "min_amount",
    "max": "max_amount",
    "partial": "partial_allowed",
    "overpay": "overpay_allowed",
    "url": "url",
    "timeout_ms": "timeout_ms",
    "max_in_flight": "max_in_flight",
    "status": "status",
}
_DEFAULTS: dict[str, Any] = {
    "min_amount": 1,
    "max_amount": None,
    "partial_allowed": True,
    "overpay_allowed": False,
    "fee_fixed": 0,
    "settlement_account": None,
    "status": "active",
    "url": None,
    "secret": None,
    "timeout_ms": 3000,
    "max_in_flight": 64,
}


def run(args: argparse.Namespace, engine: Engine, home: Path, refresh: float) -> int:
    """One action; ``home`` holds the hash.key secrets are sealed with; ``refresh`` is the
    nodes' ``reference_refresh`` (said after a change: when it is served)."""
    with engine.begin() as conn:
        if args.action == "list":
            print("\n".join(list_billers(conn, _opener(home))) or "no billers")
            return 0
        if args.action == "set-key":
            shown = set_key(conn, args.code, args.key_file)
            print(f"biller {args.code}: debt files checked against key {shown}")
            return 0
        changes = _changes(args, home)
        if args.action == "add":
            add_biller(conn, args.code, changes)
            done = "added"
        else:
            set_biller(conn, args.code, changes)
            done = "changed"
    print(f"biller {args.code} {done}; running nodes serve it within {refresh:g} s")
    return 0


def _changes(args: argparse.Namespace, home: Path) -> dict[str, Any]:
    """The columns the command line sets (a secret read from its file and sealed)."""
    given = {
        column: getattr(args, option)
        for option, column in _COLUMNS.items()
        if getattr(args, option, None) is not None
    }
    if args.no_max:
        given["max_amount"] = None
    if args.exact:
        if args.partial or args.overpay:
            raise BillerCommandError("--exact allows neither --partial nor --overpay")
        given.update(partial_allowed=False, overpay_allowed=False)
    if args.secret_file is not None:
        given["secret"] = _sealed_secret(args.code, args.secret_file, home)
    return given


def _sealed_secret(code: str, path: Path, home: Path) -> str:
    try:
        secret = path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise BillerCommandError(f"--secret-file {path}: {exc.strerror}") from None
    if len(secret) < MIN_SECRET:
        raise BillerCommandError(
            f"--secret-file {path}: the secret has {len(secret)} bytes, at least {MIN_SECRET}"
        )
    try:
        return home_sealer(home).seal(code, secret)
    except SealError as exc:
        raise BillerCommandError(str(exc)) from None


def add_biller(conn: Connection, code: str, given: dict[str, Any]) -> None:
    if not _CODE.fullmatch(code):
        raise BillerCommandError(f"biller code {code!r}: 1 to 8 letters and digits")
    if _row(conn, code) is not None:
        raise BillerCommandError(f"biller {code} exists (change it with: billswitch billers set)")
    row = {**_DEFAULTS, **given, "code": code}
    check(row)
    conn.execute(insert(s.billers).values(**row))


def set_biller(conn: Connection, code: str, given: dict[str, Any]) -> None:
    current = _row(conn, code, lock=True)
    if current is None:
        raise BillerCommandError(f"no biller {code!r} (see: billswitch billers list)")
    if not given:
        raise BillerCommandError("nothing to change (see: billswitch billers set --help)")
    check({**current, **given})
    conn.execute(update(s.billers).where(_b.code == code).values(**given))


def set_key(conn: Connection, code: str, key_file: Path) -> str:
    """Store the biller's debt-file key (raw, hex); returns its fingerprint."""
    try:
        raw = read_public_key(key_file)
    except BadKey as exc:
        raise BillerCommandError(str(exc)) from None
    current = _row(conn, code, lock=True)
    if current is None:
        raise BillerCommandError(f"no biller {code!r} (see: billswitch billers list)")
    if current["kind"] != "held":
        raise BillerCommandError(
            f"biller {code} is {current['kind']}: only held billers send signed debt files"
        )
    conn.execute(update(s.billers).where(_b.code == code).values(public_key=raw.hex()))
    return fingerprint(raw)


def _row(conn: Connection, code: str, lock: bool = False) -> dict[str, Any] | None:
    query = select(s.billers).where(_b.code == code)
    found = conn.execute(query.with_for_update() if lock else query).first()
    return dict(found._mapping) if found else None


# What a biller row must satisfy, whichever command wrote it: (broken, why) in order.
_RULES: tuple[tuple[Callable[[dict[str, Any]], bool], Callable[[dict[str, Any]], str]], ...] = (
    (lambda r: r["kind"] not in KINDS, lambda r: f"kind {r['kind']!r}: one of {', '.join(KINDS)}"),
    (
        lambda r: r["currency"] not in CURRENCIES,
        lambda r: (
            f"currency {r['currency']!r}: an ISO 4217 numeric code such as 944"
            " (iso/currency.py lists those known)"
        ),
    ),
    (lambda r: not r["name"].strip(), lambda r: "--name: empty"),
    (lambda r: len(r["name"]) > 100, lambda r: "--name: longer than 100 characters"),
    (lambda r: r["min_amount"] < 1, lambda r: f"--min {r['min_amount']}: at least 1"),
    (
        lambda r: r["max_amount"] is not None and r["max_amount"] < r["min_amount"],
        lambda r: f"--min {r['min_amount']} is above --max {r['max_amount']}",
    ),
    (
        lambda r: r["kind"] == "online" and not r["url"],
        lambda r: "an online biller needs --url (its API's base URL)",
    ),
    (
        lambda r: r["kind"] == "online" and not r["secret"],
        lambda r: "an online biller needs --secret-file (its HMAC secret)",
    ),
    (
        lambda r: r["url"] is not None and not _URL.fullmatch(r["url"]),
        lambda r: f"--url {r['url']!r}: an http:// or https:// URL",
    ),
    (
        lambda r: r["url"] is not None and len(r["url"]) > 200,
        lambda r: "--url: longer than 200 characters",
    ),
    (
        lambda r: not 1 <= r["timeout_ms"] <= 600_000,
        lambda r: f"--timeout-ms {r['timeout_ms']}: 1 to 600000",
    ),
    (
        lambda r: not 1 <= r["max_in_flight"] <= 100_000,
        lambda r: f"--max-in-flight {r['max_in_flight']}: 1 to 100000",
    ),
)


def check(row: dict[str, Any]) -> None:
    """Refuse a row that breaks a rule, naming the first rule it breaks."""
    for broken, why in _RULES:
        if broken(row):
            raise BillerCommandError(why(row))


_LIST = (
    "{code:8s}  {kind:7s}  {currency:3s}  {min:>16s}  {max:>16s}  {partial:7s}  {overpay:7s}"
    "  {status:8s}  {secret:6s}  {key:16s}  {timeout:>7}  {inflight:>8}  {url}  {name}"
)


def _opener(home: Path) -> Callable[[str, str], str]:
    """How a listing shows a sealed secret: its check value, or why it cannot."""
    try:
        sealer: Sealer | None = home_sealer(home)
    except SealError:
        sealer = None

    def show(code: str, sealed: str) -> str:
        if sealer is None:
            return "sealed"
        try:
            return check_value(sealer.open(code, sealed))
        except SealError:
            return "BADKEY"

    return show


def list_billers(conn: Connection, show_secret: Callable[[str, str], str]) -> list[str]:
    """A header and one line per biller (amounts in major units); none when there are none.
    The SECRET column is the secret's check value, never the secret; KEY the fingerprint
    of a held biller's debt-file key."""
    rows = conn.execute(select(s.billers).order_by(_b.code)).all()
    if not rows:
        return []
    header = _LIST.format(
        code="CODE", kind="KIND", currency="CUR", min="MIN", max="MAX", partial="PARTIAL",
        overpay="OVERPAY", status="STATUS", secret="SECRET", key="KEY", timeout="TIMEOUT",
        inflight="INFLIGHT", url="URL", name="NAME",
    )  # fmt: skip
    return [header] + [
        _LIST.format(
            code=r.code,
            kind=r.kind,
            currency=r.currency,
            min=major_units(r.min_amount, r.currency),
            max=major_units(r.max_amount, r.currency) if r.max_amount is not None else "-",
            partial="yes" if r.partial_allowed else "no",
            overpay="yes" if r.overpay_allowed else "no",
            status=r.status,
            secret=show_secret(r.code, r.secret) if r.secret else "-",
            key=fingerprint(bytes.fromhex(r.public_key)) if r.public_key else "-",
            timeout=r.timeout_ms,
            inflight=r.max_in_flight,
            url=r.url or "-",
            name=r.name,
        )
        for r in rows
    ]


def fail(message: str) -> int:
    print(f"billswitch billers: {message}", file=sys.stderr)
    return 2
