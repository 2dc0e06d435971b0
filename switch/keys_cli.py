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

from sqlalchemy import Engine

from hsm_sim.crypto import des, kcv, lmk
from hsm_sim.interface import KeyUnderLmk
from hsm_sim.software import HsmCore
from switch.security.keystore import HSM_KEY_TYPES, add_key, list_keys, retire_key


class KeyCommandError(Exception):
    """A wrong argument or component: one line, no key material."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="import, generate, list and retire working keys")
    keys.add_argument("--lmk", type=Path, help="LMK file (default: the payShield test LMK)")
    actions = keys.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every key: owner, kind, state, check value (never the key)")
    gen = actions.add_parser("generate", help="a new random key, stored under the LMK")
    _owner_kind(gen)
    imp = actions.add_parser("import", help="clear components (XORed), or a key under a ZMK")
    _owner_kind(imp)
    imp.add_argument(
        "--components",
        type=int,
        default=2,
        help="number of clear components to prompt for (hidden input)",
    )
    imp.add_argument("--under-zmk", metavar="HEX", help="the key under the owner's ZMK instead")
    retire = actions.add_parser("retire", help="retire a key by id")
    retire.add_argument("id", type=int)
    return keys


def _owner_kind(p: argparse.ArgumentParser) -> None:
    p.add_argument("--owner", required=True, help="acquirer:terminal, acquirer: (host) or issuer")
    p.add_argument("--kind", required=True, choices=sorted(HSM_KEY_TYPES))


def run(args: argparse.Namespace, engine: Engine) -> int:
    lmk_set = lmk.load_lmk_file(args.lmk) if args.lmk else lmk.TEST_LMK
    core = HsmCore(lmk_set)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        if args.action == "list":
            for k in list_keys(conn):
                print(f"{k.id:5d}  {k.owner:20s} {k.name:4s} {k.state:9s} KCV {k.key.kcv}")
            return 0
        if args.action == "retire":
            if not retire_key(conn, args.id, now):
                raise KeyCommandError(f"no key {args.id} that is not retired already")
            print(f"key {args.id} retired")
            return 0
        key = _new_key(args, core, lmk_set, conn)
        key_id = add_key(conn, args.owner, args.kind, key, now)
    print(f"key {key_id}: {args.owner} {args.kind} stored under the LMK, KCV {key.kcv}")
    return 0


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
    from switch.security.keystore import load_keys

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
