"""``python -m hsm_sim``: the payShield simulator as a standalone server.

It needs ``--lmk FILE`` (one ``NN-NN HEX32`` line per pair, made by
``billswitch lmk generate``), or ``--lmk test`` for the public payShield test
LMK, said explicitly and warned of. Problems with the command line or the
LMK file end with a one-line message and exit status 2 (never quoting the
file: it is LMK material). Core dumps are disabled: the process holds clear keys.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from hsm_sim.core_dumps import forbid_core_dumps
from hsm_sim.crypto import lmk
from hsm_sim.server import DEFAULT_HEADER_LENGTH, DEFAULT_MAX_FRAME, HsmServerFactory, listen
from hsm_sim.software import HsmCore

PROG = "hsm_sim"
TEST = "test"  # --lmk test: the public payShield test LMK


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.splitlines()[0],
        epilog=f"examples: {prog} --port 1500 --lmk /etc/billswitch/lmk.txt\n"
        f"          {prog} --port 0 --lmk test   (public test LMK: tests and demos only)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=1500, help="TCP port (0: any free port)")
    parser.add_argument(
        "--header-length",
        type=int,
        default=DEFAULT_HEADER_LENGTH,
        help="characters of header echoed back (default 4)",
    )
    parser.add_argument(
        "--lmk",
        metavar="FILE|test",
        help="LMK file (billswitch lmk generate), or 'test' for the public payShield test LMK",
    )
    parser.add_argument(
        "--max-frame", type=int, default=DEFAULT_MAX_FRAME, help="longest accepted frame"
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=0.0,
        help="seconds before each answer: a slow HSM, for tests (default 0)",
    )
    return parser


class UsageError(Exception):
    """A problem with the command line or a file it names: one line, exit status 2."""


def _load_lmk(name: str | None) -> lmk.LmkSet:
    """The LMK set; a bad file's own message is not shown, since it may quote a key."""
    if name is None:
        raise UsageError(
            "--lmk is required: an LMK file (billswitch lmk generate --out FILE),"
            " or --lmk test for the public payShield test LMK"
        )
    if name == TEST:
        return lmk.TEST_LMK
    path = Path(name)
    try:
        return lmk.load_lmk_file(path)
    except OSError as exc:
        raise UsageError(f"cannot read LMK file {path}: {exc.strerror}") from None
    except ValueError:
        raise UsageError(f"{path} is not an LMK file (20 lines 'NN-NN HEX32')") from None


def _serve(args: argparse.Namespace, prog: str) -> int:
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError

    forbid_core_dumps()  # before the LMK is read: it must never be in a core file
    lmk_set = _load_lmk(args.lmk)
    factory = HsmServerFactory(HsmCore(lmk_set), args.header_length, args.max_frame, args.delay)
    try:
        port = listen(reactor, factory, args.host, args.port)
    except CannotListenError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.socketError}") from None
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still stop us cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A SIGTERM between the listening line and reactor.run (which installs its own handler)
    # must stop us cleanly too: scripts send it as soon as they have read that line.
    signal.signal(signal.SIGTERM, lambda *_: reactor.callWhenRunning(reactor.stop))
    check = lmk.lmk_check_value(lmk_set)[:6]
    # Said once the reactor's signal handlers are in place: a SIGTERM from whoever
    # waited for the line stops the simulator cleanly.
    reactor.callWhenRunning(_listening, prog, f"{args.host}:{port.getHost().port}", check, args.lmk)
    reactor.run()
    _say(prog, "stopped")
    return 0


def _listening(prog: str, where: str, check: str, lmk_file: Path | None) -> None:
    _say(prog, f"listening {where} (LMK {check}; Ctrl-C stops)")
    if lmk.is_test_lmk(check):  # after the listening line: scripts read that one first
        _say(
            prog,
            f"WARNING: running the public payShield test LMK (check value {check});"
            " give --lmk FILE for anything but tests",
        )


def _say(prog: str, line: str) -> None:
    print(f"{prog}: {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    args = _parser(prog).parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.header_length < 0 or args.max_frame < 1 or args.delay < 0:
            raise UsageError("--header-length and --delay must be 0 or more, --max-frame 1 or more")
        return _serve(args, prog)
    except UsageError as exc:
        _say(prog, str(exc))
        return 2


if __name__ == "__main__":
    sys.exit(main())
