"""``billswitch keys``: import, generate, list and retire working keys.

Keys exist only under the LMK (``keys`` table, with their check value). The
command works with the in-process software HSM holding the test LMK or an
LMK file (``--lmk``): a key ceremony enters clear components, which are
XORed inside the HSM and never printed, logged or stored.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from functools import reduce
from pathlib import Path

from sqlalchemy import Connection, Engine, select

from hsm_sim.crypto import des, kcv, lmk
from hsm_sim.interface import KeyUnderLmk
from hsm_sim.software import HsmCore
from switch.ledger import schema as s
from switch.security.keystore import HSM_KEY_TYPES, add_key, list_keys, load_keys, retire_key


class KeyCommandError(Exception):
    """A wrong argument or component: one line, no key material."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="import, generate, list and retire working keys")
    keys.add_argument("--lmk", type=Path, help="LMK file (default: the payShield test LMK)")
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
        help="number of clear components to prompt for (hidden input)",
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


def run(args: argparse.Namespace, engine: Engine, grace: float = 0.0) -> int:
    """One action; ``grace`` is ``[hsm] key_grace``: how long a replaced key keeps working."""
    lmk_set = lmk.load_lmk_file(args.lmk) if args.lmk else lmk.TEST_LMK
    core = HsmCore(lmk_set)
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
        key = _new_key(args, core, lmk_set, conn)
        key_id = add_key(conn, args.owner, args.kind, key, now, grace if replaced else 0.0)
    print(f"key {key_id}: {args.owner} {args.kind} stored under the LMK, KCV {key.kcv}")
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


def _new_key(args: argparse.Namespace, core: HsmCore, lmk_set: lmk.LmkSet, conn) -> KeyUnderLmk:  # type: ignore[no-untyped-def]
    key_type = HSM_KEY_TYPES[args.kind]
    if args.action == "generate":
        return core.generate_key(key_type, "U").under_lmk
    if args.under_zmk:
        return _import_under_zmk(args, core, conn, key_type)
    clear = reduce(_xor, (_component(i) for i in range(1, args.components + 1)))
    clear = des.fix_parity(clear)
    value = lmk.encrypt_key(lmk_set, key_type, clear, "U")
    return KeyUnderLmk(key_type, value, kcv.kcv_des(clear)[:3].hex().upper())


def _import_under_zmk(args, core: HsmCore, conn, key_type: str) -> KeyUnderLmk:  # type: ignore[no-untyped-def]
    zmk = load_keys(conn).active(args.owner, "ZMK")
    if zmk is None:
        raise KeyCommandError(f"{args.owner} has no active ZMK to import under")
    if key_type != HSM_KEY_TYPES["ZPK"]:
        raise KeyCommandError("only a ZPK can be imported under a ZMK (payShield FA)")
    return core.import_key(key_type, zmk, args.under_zmk)


def _component(n: int) -> bytes:
    text = getpass.getpass(f"component {n} (32 hex, hidden): ").strip()
    try:
        value = bytes.fromhex(text)
    except ValueError:
        raise KeyCommandError(f"component {n} is not hex") from None
    if len(value) != 16:
        raise KeyCommandError(f"component {n} must be 16 bytes (32 hex)")
    return value


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def fail(message: str) -> int:
    print(f"billswitch keys: {message}", file=sys.stderr)
    return 2
