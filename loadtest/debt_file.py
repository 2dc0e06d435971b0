"""A signed debt list of N debts for ``billswitch debts import`` (issue 12's benchmark).

    python -m loadtest.debt_file OUT.xml --debts 1000000 [--biller UTIL01]
        [--mode full|delta] [--generated 2026-11-01T00:00:00Z] [--start 3000000]
        [--key-hex HEX]   (default: UTIL01's published TEST-ONLY key)

Writes OUT.xml (streamed: a million debts take about 150 MB on disk, a few MB
here) and OUT.xml.sig. Accounts run from ``--start``; one debt per account, in
period 202611, with a holder name in several scripts as the demo's are.
"""

from __future__ import annotations

import argparse
import mmap
import sys
import time
from pathlib import Path
from xml.sax.saxutils import quoteattr

from switch.debt_signing import fingerprint, private_key_from_hex, public_of, sign
from switch.demo import DEMO_DEBT_KEYS, SURNAMES

BUFFER = 1 << 20


def write_file(
    out: Path, debts: int, biller: str, mode: str, generated: str, start: int, currency: str
) -> None:
    names = [quoteattr(n) for n in SURNAMES]
    with out.open("w", encoding="utf-8", buffering=BUFFER) as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        f.write(
            f'<debts biller="{biller}" currency="{currency}" mode="{mode}"'
            f' generated="{generated}">\n'
        )
        for i in range(debts):
            account = start + i
            f.write(
                f'  <debt account="{account}" name={names[i % len(names)]}'
                f' amount="{1000 + i % 99000}" period="202611" invoice="INV{account}"'
                ' due="2026-11-25"/>\n'
            )
        f.write("</debts>\n")


def sign_file(path: Path, key_hex: str) -> str:
    """``path``.sig; returns the key's fingerprint. The file is mapped, not read."""
    key = private_key_from_hex(key_hex)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        Path(f"{path}.sig").write_bytes(sign(key, data))
    return fingerprint(public_of(key))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.debt_file", description=__doc__)
    p.add_argument("out", type=Path)
    p.add_argument("--debts", type=int, default=1_000_000)
    p.add_argument("--biller", default="UTIL01")
    p.add_argument("--currency", default="944")
    p.add_argument("--mode", choices=("full", "delta"), default="full")
    p.add_argument("--generated", default="2026-11-01T00:00:00Z")
    p.add_argument("--start", type=int, default=3_000_000, help="first account number")
    p.add_argument("--key-hex", default=DEMO_DEBT_KEYS["UTIL01"][0])
    args = p.parse_args(argv)
    began = time.perf_counter()
    write_file(
        args.out, args.debts, args.biller, args.mode, args.generated, args.start, args.currency
    )
    written = time.perf_counter() - began
    shown = sign_file(args.out, args.key_hex)
    print(
        f"{args.out}: {args.debts} debts, {args.out.stat().st_size} bytes, written in"
        f" {written:.1f} s, signed with key {shown}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
