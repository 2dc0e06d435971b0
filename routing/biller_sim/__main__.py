"""``python -m routing.biller_sim`` (``billswitch biller-sim``): the reference biller server.

Serves the demo billers TEL01 and PWR01 over HTTP, each under its own path
prefix (``http://HOST:PORT/TEL01/payments`` ...), with their TEST-ONLY secrets.
The store is one SQLite file (``--data``, default ``var/biller-sim.sqlite3``
under the current directory); the demo accounts are added where missing.
Faults for tests: ``--fault CODE=JSON`` at start (see routing/biller_sim/faults.py)
or ``POST /_control/CODE`` while running. Bad arguments: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from routing.biller_sim.catalogue import BILLERS
from routing.biller_sim.faults import FaultBoard, Faults
from routing.biller_sim.server import listen, make_site, open_store
from routing.biller_sim.store import SYNCHRONOUS

PROG = "biller_sim"
DEFAULT_DATA = Path("var") / "biller-sim.sqlite3"


class UsageError(Exception):
    """A problem with the command line: one line, exit status 2."""


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=f"examples: {prog} --port 8090 --data /tmp/billers.sqlite3\n"
        f'          {prog} --port 0 --fault \'TEL01={{"error": 503, "ops": ["pay"]}}\'',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8090, help="TCP port (0: any free port)")
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"the SQLite store (default {DEFAULT_DATA}; created with the demo accounts)",
    )
    parser.add_argument(
        "--synchronous",
        choices=SYNCHRONOUS,
        default="normal",
        help="normal: commits survive a kill of this process; full: also an OS crash (fsync)",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="CODE=JSON",
        help="faults of one biller from the start (repeatable; see POST /_control/CODE)",
    )
    return parser


def _faults(specs: list[str]) -> FaultBoard:
    board = FaultBoard()
    for spec in specs:
        code, sep, text = spec.partition("=")
        if not sep or code not in BILLERS:
            known = ", ".join(BILLERS)
            raise UsageError(f"--fault {spec!r}: want CODE=JSON with CODE one of {known}")
        try:
            board.set(code, Faults.from_json(json.loads(text)))
        except ValueError as exc:  # JSONDecodeError is one
            raise UsageError(f"--fault {code}: {exc}") from None
    return board


def _serve(args: argparse.Namespace, prog: str) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    board = _faults(args.fault)
    try:
        args.data.parent.mkdir(parents=True, exist_ok=True)
        store = open_store(str(args.data), args.synchronous)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot open the store {args.data}: {exc}") from None
    except Exception as exc:  # sqlite3.DatabaseError: not a store
        raise UsageError(f"{args.data} is not a biller-sim store: {exc}") from None
    try:
        port = listen(reactor, make_site(reactor, store, board), args.host, args.port)
    except CannotListenError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.socketError}") from None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: reactor.callWhenRunning(reactor.stop))
    where = f"{args.host}:{port.getHost().port}"
    billers = " ".join(BILLERS)
    reactor.callWhenRunning(
        _say, prog, f"listening {where} (billers {billers}; store {args.data}; Ctrl-C stops)"
    )
    reactor.run()
    store.close()
    _say(prog, "stopped")
    return 0


def _say(prog: str, line: str) -> None:
    print(f"{prog}: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _serve(args, prog)
    except UsageError as exc:
        _say(prog, str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
