"""``billswitch lmk generate``: a new LMK for the software HSM, formed from components.

An LMK is 20 double-length DES keys; whoever holds it and the database holds
every key. It is formed from 2 or more components (XORed, odd parity
forced), either random or typed by their custodians (hidden prompts, one per
pair). Each component's check value and the LMK's are printed, so custodians
can confirm what was used and operators can set ``[hsm] lmk_check``; no
component or key is ever printed. The file is written readable by its owner
only (0600) and never over an existing file.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from hsm_sim.crypto import lmk


class LmkCommandError(Exception):
    """A wrong argument or component: one line, no key material."""


def add_arguments(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    command = sub.add_parser("lmk", help="make an LMK file for the software HSM")
    actions = command.add_subparsers(dest="action", required=True)
    generate = actions.add_parser(
        "generate",
        help="form a new LMK from components and write it to a new file (mode 0600)",
        epilog="examples: billswitch lmk generate --out /etc/billswitch/lmk.txt\n"
        "          billswitch lmk generate --out lmk.txt --components 3 --typed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.add_argument("--out", type=Path, required=True, help="the new LMK file")
    generate.add_argument(
        "--components", type=int, default=2, help="how many components (2 to 9, default 2)"
    )
    generate.add_argument(
        "--typed",
        action="store_true",
        help="custodians type each component (20 pairs of 32 hex, hidden) instead of random ones",
    )
    return command


def run(args: argparse.Namespace) -> int:
    if not 2 <= args.components <= 9:
        raise LmkCommandError("--components: 2 to 9 (no one custodian may know the LMK)")
    if args.out.exists():
        raise LmkCommandError(f"{args.out} exists: an LMK file is never overwritten")
    components = [_component(args.typed, n) for n in range(1, args.components + 1)]
    for n, component in enumerate(components, 1):
        print(f"component {n}: check value {lmk.lmk_check_value(component)}")
    lmk_set = lmk.combine_components(components)
    check = lmk.lmk_check_value(lmk_set)
    if lmk.is_test_lmk(check):
        raise LmkCommandError("these components form the public test LMK: not written")
    _write(args.out, lmk.lmk_text(lmk_set, f"billswitch LMK, check value {check}"))
    print(f"LMK check value {check}, written to {args.out} (mode 0600)")
    print(f'configure: [hsm] lmk = "{args.out}" and lmk_check = "{check}"')
    if not args.typed:
        print("the random components are not kept: this file is the only copy of the LMK")
    return 0


def _component(typed: bool, n: int) -> lmk.LmkSet:
    if not typed:
        return lmk.random_lmk()
    pairs = []
    for label in lmk.pair_labels():
        text = getpass.getpass(f"component {n}, pair {label} (32 hex, hidden): ").strip()
        try:
            value = bytes.fromhex(text)
        except ValueError:
            value = b""
        if len(value) != 16:
            raise LmkCommandError(f"component {n}, pair {label}: must be 32 hex")
        pairs.append(value)
    return lmk.LmkSet(tuple(pairs))


def _write(path: Path, text: str) -> None:
    """Create ``path`` 0600, failing if it exists (even if it appeared since the check)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise LmkCommandError(f"{path} exists: an LMK file is never overwritten") from None
    with os.fdopen(fd, "w", encoding="ascii") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(text)


def fail(message: str) -> int:
    print(f"billswitch lmk: {message}", file=sys.stderr)
    return 2
