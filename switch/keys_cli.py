"""``billswitch keys``: import, generate, list and retire working keys.

Keys exist only under the LMK (``keys`` table, with their check value). The
command uses the configured HSM (``[hsm]``, switch/custody.py): the software
HSM under its LMK file, or a payShield-protocol HSM over TCP; every line that
stores a key names the LMK by its check value.

A key ceremony combines 2 or more components inside the HSM (payShield A4),
showing each component's check value so that each custodian can confirm
theirs. With the software HSM, which runs in this process, custodians type
clear components (hidden); each is put under the LMK at once and never
printed, logged or stored. A TCP HSM takes clear components only at its own
console (payShield FK/EC), so here each component is entered as the HSM gave
it, under the LMK.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select

from hsm_sim.blocking import result_of
from hsm_sim.interface import COMPONENT_COUNTS, KeyUnderLmk
from switch.custody import Custody
from switch.ledger import schema as s
from switch.security.keystore import HSM_KEY_TYPES, add_key, list_keys, load_keys, retire_key


class KeyCommandError(Exception):
    """A wrong argument or component: one line, no key material."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    keys = sub.add_parser(
        "keys",
        help="import, generate, list and retire working keys (with the configured [hsm])",
    )
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every key: owner, kind, state, check value (never the key)")
    gen = actions.add_parser(
        "generate",
        help="a new random key, stored under the LMK",
        epilog="example: billswitch keys generate --owner 100001:ATM00003 --kind TAK",
    )
    _owner_kind(gen)
    imp = actions.add_parser(
        "import",
        help="clear components (XORed), or a key under a ZMK",
        epilog="example: billswitch keys import --owner 100001:ATM00003 --kind TMK",
    )
    _owner_kind(imp)
    imp.add_argument(
        "--components",
        type=int,
        default=2,
        help="number of components to prompt for (2 to 9, hidden input)",
    )
    imp.add_argument("--under-zmk", metavar="HEX", help="the key under the owner's ZMK instead")
    retire = actions.add_parser(
        "retire",
        help="retire a key by id (the owner can no longer use it)",
        epilog="example: billswitch keys retire 7 --yes",
    )
    retire.add_argument("id", type=int)
    retire.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    return keys


def _owner_kind(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", required=True, help="acquirer:terminal, acquirer: (host) or issuer")
    p.add_argument("--kind", required=True, choices=sorted(HSM_KEY_TYPES))
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace the owner's active key of this kind (it keeps working for key_grace)",
    )


_LIST = "{id:>5}  {owner:20s}  {kind:4s}  {state:9s}  {kcv}"


NEEDS_HSM = ("generate", "import")  # list and retire read or change rows, never key material


def run(
    args: argparse.Namespace, engine: Engine, custody: Custody | None, grace: float = 0.0
) -> int:
    """One action; ``custody`` is the configured HSM (needed by NEEDS_HSM); ``grace`` is
    ``[hsm] key_grace``: how long a replaced key keeps working."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if args.action == "list":
            print("\n".join(_listing(conn)) or "no keys")
            return 0
        if args.action == "retire":
            _confirm_retire(args)
            if not retire_key(conn, args.id, now):
                raise KeyCommandError(f"no key {args.id} that is not retired already")
            print(f"key {args.id} retired")
            return 0
        _check_owner(conn, args.owner)
        replaced = load_keys(conn).active(args.owner, args.kind)
        if replaced is not None and not args.replace:
            raise KeyCommandError(
                f"{args.owner} has an active {args.kind} (KCV {replaced.kcv});"
                " add --replace to replace it"
            )
        assert custody is not None
        key = _new_key(args, custody, conn)
        key_id = add_key(conn, args.owner, args.kind, key, now, grace if replaced else 0.0)
    print(f"key {key_id}: {args.owner} {args.kind} stored under {custody.name}, KCV {key.kcv}")
    if replaced is not None:
        print(f"the previous {args.kind} (KCV {replaced.kcv}) keeps working for {grace:g} s")
    return 0


def _listing(conn: Connection) -> list[str]:
    keys = list_keys(conn)
    if not keys:
        return []
    header = _LIST.format(id="ID", owner="OWNER", kind="KIND", state="STATE", kcv="KCV")
    return [header] + [
        _LIST.format(id=k.id, owner=k.owner, kind=k.name, state=k.state, kcv=k.key.kcv)
        for k in keys
    ]


def _check_owner(conn: Connection, owner: str) -> None:
    """Keys belong to a known terminal (``acquirer:terminal``), host link (``acquirer:``)
    or the issuer; a typo must not create a key nobody can use."""
    if owner == "issuer":
        return
    acquirer, sep, terminal = owner.partition(":")
    t = s.terminals.c
    found = (
        sep
        and conn.execute(
            select(t.terminal_id).where(t.acquirer_id == acquirer, t.terminal_id == terminal)
        ).first()
    )
    if not found:
        raise KeyCommandError(
            f"unknown owner {owner!r}: expected a known acquirer:terminal,"
            " acquirer: (host link) or issuer"
        )


def _confirm_retire(args: argparse.Namespace) -> None:
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise KeyCommandError(f"retiring key {args.id} needs confirmation: add --yes")
    answer = input(f"retire key {args.id}? Its owner can no longer use it. [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        raise KeyCommandError(f"key {args.id} not retired")


def _new_key(args: argparse.Namespace, custody: Custody, conn: Connection) -> KeyUnderLmk:
    key_type = HSM_KEY_TYPES[args.kind]
    if args.action == "generate":
        return result_of(custody.hsm.generate_key(key_type, "U")).under_lmk
    if args.under_zmk:
        return _import_under_zmk(args, custody, conn, key_type)
    if args.components not in COMPONENT_COUNTS:
        raise KeyCommandError("--components: 2 to 9 (no one custodian may know the key)")
    parts = tuple(_component(custody, key_type, n) for n in range(1, args.components + 1))
    return result_of(custody.hsm.form_key(key_type, parts, "U"))


def _import_under_zmk(
    args: argparse.Namespace, custody: Custody, conn: Connection, key_type: str
) -> KeyUnderLmk:
    zmk = load_keys(conn).active(args.owner, "ZMK")
    if zmk is None:
        raise KeyCommandError(f"{args.owner} has no active ZMK to import under")
    if key_type != HSM_KEY_TYPES["ZPK"]:
        raise KeyCommandError("only a ZPK can be imported under a ZMK (payShield FA)")
    return result_of(custody.hsm.import_key(key_type, zmk, args.under_zmk))


def _component(custody: Custody, key_type: str, n: int) -> KeyUnderLmk:
    """Component ``n`` under the LMK, its check value shown for its custodian to confirm."""
    encrypt = getattr(custody.hsm, "encrypt_component", None)
    if encrypt is not None:  # the software HSM, in this process: a clear component
        text = getpass.getpass(f"component {n} (32 hex, hidden): ").strip()
        part = result_of(encrypt(key_type, _clear_component(n, text)))
    else:  # a TCP HSM: the component as its console gave it, under the LMK
        text = getpass.getpass(f"component {n} under {custody.name} (U + 32 hex): ").strip()
        part = KeyUnderLmk(key_type, _encrypted_component(n, text))
        part = KeyUnderLmk(key_type, part.value, result_of(custody.hsm.key_check_value(part))[:6])
    print(f"component {n}: KCV {part.kcv}")
    return part


def _clear_component(n: int, text: str) -> bytes:
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise KeyCommandError(f"component {n} is not hex") from None
    if len(value) != 16:
        raise KeyCommandError(f"component {n} must be 16 bytes (32 hex)")
    return value


def _encrypted_component(n: int, text: str) -> str:
    value = text.upper()
    if len(value) != 33 or value[0] != "U" or value[1:].strip("0123456789ABCDEF"):
        raise KeyCommandError(f"component {n} must be U and 32 hex (under the LMK)")
    return value


def fail(message: str) -> int:
    print(f"billswitch keys: {message}", file=sys.stderr)
    return 2
