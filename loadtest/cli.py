"""``python -m loadtest`` / ``billswitch loadtest``: run, compare, bench, echo-server.

- run: load a running switch (``--host/--port``), optionally check its ledger (``--db``);
- compare (or ``run --echo``): the same workload against a bare echo server first,
  then the switch, and the ratio of their responses/s;
- bench: like compare, but starts a switch itself on free ports (``make bench``),
  with the channels requiring MAC when ``--mac-key`` is given, and its HSM in
  process (default), at ``--hsm-url``, or a simulator it starts (``--hsm-sim``);
- echo-server: the baseline server alone.

``--mac-key`` MACs every request and verifies every response (a bad one counts
as error ``bad_mac``); ``--on-us PAN:PIN --tpk HEX`` makes payments on-us card
payments with a PIN block, spread over ``--cards N`` cards; ``--terminals``
restricts the identities used. Requests are built before the window
(``--prebuild``, see prebuild.py) and response MACs checked after it.

Exit codes: 0 run measured, 1 ledger check failed, 2 bad arguments,
3 nothing measured (no response in the window), 4 a response MAC did not
verify, 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from loadtest import report
from loadtest.config import (
    DEFAULT_ACCOUNTS,
    DEFAULT_MIX,
    RunConfig,
    parse_accounts,
    parse_mix,
    parse_terminals,
    parse_tpdu,
)
from loadtest.identity import CHANNELS
from loadtest.security import (
    MAC_KEY_LENGTHS,
    PIN_KEY_LENGTHS,
    OnUsCard,
    on_us_cards,
    parse_card,
    parse_key,
)
from loadtest.workload import BILLER

EXIT_OK, EXIT_LEDGER, EXIT_USAGE, EXIT_EMPTY, EXIT_MAC, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130
SUBCOMMANDS = ("run", "compare", "bench", "echo-server")
T = TypeVar("T")
HELP = argparse.ArgumentDefaultsHelpFormatter
MAX_AMOUNT, ON_US_MAX_AMOUNT = 100, 1  # the demo wallet holds 1,000,000: keep on-us small


class UsageError(Exception):
    """Settings that parse but make no sense together; exit 2 rather than a traceback."""


def main(argv: list[str] | None = None, prog: str = "loadtest") -> int:
    """Entry point; a bare option list means ``run``. ``prog``: how messages name the
    program (``billswitch loadtest`` when started through the switch's command)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    if not args_in or args_in[0] not in (*SUBCOMMANDS, "-h", "--help"):
        args_in = ["run", *args_in]
    args = build_parser(prog).parse_args(args_in)
    try:
        return int(args.handler(args))
    except UsageError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def build_parser(prog: str = "loadtest") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Load generator and echo baseline for the billswitch switch.",
        epilog=f"example: {prog} bench --db postgresql+psycopg2://postgres@127.0.0.1:5432/test",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    workload = _workload_options()
    run = commands.add_parser(
        "run", parents=[workload], help="load one target", formatter_class=HELP
    )
    run.add_argument("--echo", action="store_true", help="same as compare: echo first, then us")
    run.set_defaults(handler=cmd_run)
    compare = commands.add_parser(
        "compare",
        parents=[workload],
        help="echo-server baseline, then the target; ratio",
        formatter_class=HELP,
    )
    compare.set_defaults(handler=cmd_compare)
    bench = commands.add_parser(
        "bench",
        parents=[workload],
        help="start a switch on free ports, then compare (make bench)",
        formatter_class=HELP,
    )
    _bench_options(bench)
    bench.set_defaults(handler=cmd_bench)
    echo = commands.add_parser("echo-server", help="bare ISO 8583 responder (baseline)")
    echo.add_argument("--host", default="127.0.0.1")
    echo.add_argument("--port", type=int, default=9583, help="0 picks a free port")
    echo.add_argument("--framing", choices=("binary2", "ascii4"), default="binary2")
    echo.add_argument("--tpdu", action="store_true", help="frames carry a 5-byte TPDU")
    echo.add_argument(
        "--mac-key",
        type=_checked(lambda text: parse_key(text, MAC_KEY_LENGTHS)),
        metavar="HEX",
        help="MAC every answer (X9.19) under this key",
    )
    echo.set_defaults(handler=cmd_echo_server)
    return parser


def _workload_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--host", default="127.0.0.1", help="switch address")
    p.add_argument("--port", type=int, default=8583, help="switch channel port")
    p.add_argument("--channel", choices=CHANNELS, default="atm", help="terminal identities")
    p.add_argument("--connections", type=int, default=20, help="loaded connections")
    p.add_argument("--concurrency", type=int, default=1, help="closed loop: in flight per conn")
    p.add_argument("--rate", type=float, help="fixed offered rate, requests/s in total")
    p.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds before a timeout")
    p.add_argument("--mix", type=parse_mix, default=DEFAULT_MIX, help="weights per kind")
    p.add_argument(
        "--accounts",
        type=parse_accounts,
        default=DEFAULT_ACCOUNTS,
        help="list and ranges, e.g. 1000001-1000100,1000200",
    )
    p.add_argument(
        "--no-discover",
        dest="discover",
        action="store_false",
        default=argparse.SUPPRESS,  # keeps "(default: True)" out of the help
        help="skip the start-up inquiries; pay any account, unbounded",
    )
    p.set_defaults(discover=True)
    p.add_argument(
        "--max-amount",
        type=int,
        help=f"largest payment, minor units; None: {MAX_AMOUNT}, {ON_US_MAX_AMOUNT} with --on-us",
    )
    p.add_argument("--min-amount", type=int, default=1, help="smallest payment, minor units")
    p.add_argument(
        "--biller",
        default=BILLER,
        help="biller code of every request; an outline biller (MOB01) with --no-discover"
        " --min-amount 100",
    )
    p.add_argument("--idle-connections", type=int, default=0, help="extra, signed on, held idle")
    p.add_argument("--framing", choices=("binary2", "ascii4"), default="binary2", help="length")
    p.add_argument("--tpdu", type=parse_tpdu, help="TPDU as 10 hex digits (POS channels)")
    p.add_argument("--seed", type=int, help="random seed (mix, accounts, amounts, STANs)")
    p.add_argument("--db", help="switch database URL: check the ledger after the run")
    p.add_argument(
        "--seed-debts",
        type=int,
        metavar="AMOUNT",
        help="before the run, add AMOUNT of debt to every account (needs --db)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures as JSON")
    p.add_argument(
        "--prebuild",
        type=_checked(_whole_number),
        metavar="N",
        help="requests built before the warm-up (0: build while sending); None: rate x"
        " (warmup + duration), closed loop as if 12000/s (a compared switch: 1.25 x the"
        " echo rate), at most 200000",
    )
    _security_options(p)
    return p


def _security_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--terminals",
        type=_checked(parse_terminals),
        metavar="ID,...",
        help="speak only as these terminals (e.g. ATM00001, the one with demo keys)",
    )
    p.add_argument(
        "--mac-key",
        type=_checked(lambda text: parse_key(text, MAC_KEY_LENGTHS)),
        metavar="HEX",
        help="TAK: X9.19 MAC on every request, every response's MAC verified",
    )
    p.add_argument(
        "--on-us",
        type=_checked(parse_card),
        metavar="PAN:PIN",
        help="payments are on-us card payments (DE 2, 52, 53) of this card (needs --tpk)",
    )
    p.add_argument(
        "--cards",
        type=_checked(_positive_int),
        default=1,
        help="spread on-us payments over N cards: the --on-us card and the next N-1 PANs of"
        " its BIN, same PIN (bench registers them, each with its own wallet)",
    )
    p.add_argument(
        "--tpk",
        type=_checked(lambda text: parse_key(text, PIN_KEY_LENGTHS)),
        metavar="HEX",
        help="the terminal's PIN key: the PIN block (ISO format 0) is encrypted under it",
    )


def _bench_options(p: argparse.ArgumentParser) -> None:
    hsm = p.add_mutually_exclusive_group()
    hsm.add_argument(
        "--hsm-url", help="the switch's HSM, e.g. tcp://127.0.0.1:1500; None: in process"
    )
    hsm.add_argument(
        "--hsm-sim", action="store_true", help="start python -m hsm_sim and use it over TCP"
    )
    p.add_argument(
        "--workers",
        type=_checked(_positive_int),
        default=1,
        help="switch worker processes sharing the ports (its `workers` setting)",
    )
    p.add_argument(
        "--biller-sim",
        action="store_true",
        help="serve the online demo billers (TEL01, PWR01) from a reference biller server in"
        " its own process, not inside the switch (loadtest/online_billers.py)",
    )
    p.add_argument(
        "--dead-biller",
        metavar="CODE",
        help="with --biller-sim and --rate: CODE's server answers 503 (its circuit opens)"
        " while a second stream pays it; the bench's own payments run open loop at --rate"
        " beside it, each stream reported apart (loadtest/dead_biller.py); no echo run",
    )
    p.add_argument(
        "--dead-rate",
        type=float,
        default=50.0,
        help="the dead biller's stream: requests/s",
    )
    p.add_argument(
        "--dead-terminals",
        type=_checked(parse_terminals),
        metavar="ID,...",
        help="the dead stream's terminals; None: the channel's last one (the live stream"
        " then leaves it out)",
    )
    p.add_argument(
        "--home",
        type=Path,
        help="the switch's home, kept; None: a scratch folder. One home keeps one on-us"
        " card and wallet across runs on a database",
    )


def _whole_number(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"expected a whole number, not {text!r}")
    return int(text)


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"expected a whole number of at least 1, not {text!r}")
    return int(text)


def _checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type whose ValueError message is shown as is (never the value: keys)."""

    def convert(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def config_from(args: argparse.Namespace) -> RunConfig:
    """Validated RunConfig from parsed arguments (argparse applies ``type`` to defaults)."""
    fields = (
        "host",
        "port",
        "channel",
        "connections",
        "concurrency",
        "rate",
        "duration",
        "warmup",
        "timeout",
        "mix",
        "accounts",
        "discover",
        "max_amount",
        "min_amount",
        "biller",
        "idle_connections",
        "framing",
        "tpdu",
        "seed",
        "terminals",
        "mac_key",
        "prebuild",
    )
    values = {name: getattr(args, name) for name in fields}
    if values["max_amount"] is None:
        values["max_amount"] = ON_US_MAX_AMOUNT if args.on_us else MAX_AMOUNT
    try:
        cards = _on_us(args)
        cfg = RunConfig(**values, on_us=cards[0] if cards else None, cards=cards)
        cfg.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return cfg


def _on_us(args: argparse.Namespace) -> tuple[OnUsCard, ...]:
    """The on-us cards with their PIN blocks, from ``--on-us``, ``--tpk`` (both or neither)
    and ``--cards``."""
    if args.on_us is None and args.tpk is None:
        if args.cards > 1:
            raise ValueError("--cards needs --on-us and --tpk")
        return ()
    if args.on_us is None or args.tpk is None:
        raise ValueError("--on-us and --tpk go together: the PIN block is made under the TPK")
    return on_us_cards(*args.on_us, args.tpk, args.cards)


def cmd_run(args: argparse.Namespace) -> int:
    """Load one target, print the figures, check the ledger if asked."""
    if args.echo:
        return cmd_compare(args)
    cfg = config_from(args)
    _maybe_seed(args, cfg)
    from loadtest.runner import run_load

    result = run_in_reactor(lambda reactor: run_load(reactor, cfg))
    lines = report.summary_lines(result.summary)
    return _finish(args, args.db, dict(result.summary), lines, result)


def cmd_compare(args: argparse.Namespace) -> int:
    """Echo baseline then the target, same settings, same process, one after the other."""
    cfg = config_from(args)
    _maybe_seed(args, cfg)
    return _finish(args, args.db, *_compare(cfg))


def cmd_bench(args: argparse.Namespace) -> int:
    """Start a switch of our own (free ports, ``--db`` or SQLite in a scratch home), compare."""
    from loadtest.switch_process import SwitchProcess

    cfg = config_from(args)
    streams = _dead_stream(args, cfg)
    dead: RunConfig | None = None
    if streams is not None:
        cfg, dead = streams
    with (
        _bench_home(args.home) as home,
        _hsm_url(args, home) as hsm_url,
        _biller_sim(args, home) as (sim, top),
    ):
        mac = cfg.mac_key is not None
        with SwitchProcess(home, args.db, mac, hsm_url, args.workers, top) as switch:
            print(
                f"bench: switch pid {switch.pid}, home {home}, ports {switch.ports}",
                file=sys.stderr,
                flush=True,
            )
            cfg = replace(cfg, host="127.0.0.1", port=switch.ports[args.channel])
            db = args.db or f"sqlite:///{home / 'billswitch.db'}"
            args.db = db
            if sim is not None:
                from loadtest.online_billers import point_billers

                point_billers(db, sim)
            _maybe_seed(args, cfg)
            _maybe_seed_cards(db, cfg, home, args.on_us[1] if args.on_us else "")
            if dead is not None:
                dead = replace(dead, host=cfg.host, port=cfg.port)
                compared = _dead_and_live(sim, args.dead_biller, cfg, dead)
            else:
                compared = _compare(cfg)
        return _finish(args, db, *compared)


def _dead_stream(args: argparse.Namespace, cfg: RunConfig) -> tuple[RunConfig, RunConfig] | None:
    """With ``--dead-biller``: the live and the dead stream's settings (usage checked)."""
    if args.dead_biller is None:
        return None
    if not args.biller_sim:
        raise UsageError("--dead-biller needs --biller-sim (its server is told to fail)")
    from loadtest.online_billers import ONLINE

    if args.dead_biller not in ONLINE:
        raise UsageError(f"--dead-biller is one of the online demo billers: {', '.join(ONLINE)}")
    if args.dead_rate <= 0:
        raise UsageError("--dead-rate must be positive")
    from loadtest import dead_biller

    try:
        return dead_biller.split(cfg, args.dead_biller, args.dead_rate, args.dead_terminals)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _dead_and_live(
    sim: Any, code: str, live: RunConfig, dead: RunConfig
) -> tuple[dict[str, Any], list[str], Any]:
    """The dead biller's server told to fail, then both streams at once over one window;
    the live run's result decides the exit code and the ledger check."""
    from loadtest import dead_biller

    sim.control(code, dead_biller.FAULT)
    load = os.getloadavg()[0]
    live_run, dead_run = run_in_reactor(dead_biller.run_both(live, dead))
    ends = (load, os.getloadavg()[0])
    output, lines = dead_biller.outcome(live, code, live_run, dead_run, ends)
    return output, lines, live_run


def _maybe_seed_cards(db: str, cfg: RunConfig, home: Path, pin: str) -> None:
    """Bench on-us runs: the cards must be known under this switch's hash key."""
    if cfg.on_us is None:
        return
    from loadtest.seed import seed_cards, seed_demo_card

    if seed_demo_card(db, home, cfg.on_us.pan):
        print("registered the demo card under this home's hash key (wallet 1000000)")
    derived = [card.pan for card in cfg.on_us_cards[1:]]
    if derived and (count := seed_cards(db, home, derived, pin)):
        print(f"registered {count} more cards of the --on-us card's BIN (wallets 1000000 each)")


@contextmanager
def _bench_home(home: Path | None) -> Iterator[Path]:
    """The given home, kept; or a scratch one, removed afterwards."""
    if home is not None:
        yield home.resolve()
        return
    with tempfile.TemporaryDirectory(prefix="billswitch-bench-") as scratch:
        yield Path(scratch)


@contextmanager
def _hsm_url(args: argparse.Namespace, home: Path) -> Iterator[str | None]:
    """``--hsm-url`` as given, or the URL of a simulator started (and stopped) here."""
    if not args.hsm_sim:
        yield args.hsm_url
        return
    from loadtest.hsm_process import HsmSimProcess

    with HsmSimProcess(home) as hsm:
        print(f"bench: hsm_sim pid {hsm.pid} at {hsm.url}", file=sys.stderr, flush=True)
        yield hsm.url


@contextmanager
def _biller_sim(args: argparse.Namespace, home: Path) -> Iterator[tuple[Any, str]]:
    """With ``--biller-sim``: the biller server child and the switch settings that use it."""
    if not args.biller_sim:
        yield None, ""
        return
    from loadtest import online_billers

    with online_billers.start(home) as sim:
        print(f"bench: biller_sim pid {sim.pid} at {sim.url}", file=sys.stderr, flush=True)
        yield sim, online_billers.CONFIG


def _compare(cfg: RunConfig) -> tuple[dict[str, Any], list[str], Any]:
    """Both runs in one reactor (it cannot restart); the echo server in its own process."""
    from loadtest.echo_process import EchoProcess
    from loadtest.prebuild import size_after_echo
    from loadtest.runner import run_load

    with EchoProcess(cfg.framing, cfg.tpdu is not None, cfg.mac_key) as echo:
        echo_cfg = replace(cfg, host="127.0.0.1", port=echo.port, discover=False)

        async def both(reactor: Any) -> tuple[Any, Any]:
            echo_run = await run_load(reactor, echo_cfg)
            prebuild = size_after_echo(cfg, echo_run.summary["tps"])
            return echo_run, await run_load(reactor, replace(cfg, prebuild=prebuild))

        echo_result, switch_result = run_in_reactor(both)
    output: dict[str, Any] = {
        "echo": echo_result.summary,
        "switch": switch_result.summary,
        "ratio": report.ratio(switch_result.summary, echo_result.summary),
    }
    lines = report.compare_lines(echo_result.summary, switch_result.summary)
    return output, lines, switch_result


def _finish(
    args: argparse.Namespace, db: str | None, output: dict[str, Any], lines: list[str], result: Any
) -> int:
    """Ledger check (if a database is known), print, write JSON, pick the exit code."""
    status = _ledger(db, result.facts, output, lines)
    print("\n".join(lines))
    if args.json:
        report.write_json(args.json, output)
    if not result.ok:
        return EXIT_EMPTY
    summaries = [output[k] for k in ("echo", "switch") if k in output] or [output]
    return status if all(report.authentic(s) for s in summaries) else EXIT_MAC


def cmd_echo_server(args: argparse.Namespace) -> int:
    from loadtest.echo_server import serve

    return serve(args.host, args.port, args.framing, args.tpdu, args.mac_key)


def _maybe_seed(args: argparse.Namespace, cfg: RunConfig) -> None:
    if args.seed_debts is None:
        return
    if not args.db:
        raise UsageError("--seed-debts needs --db")
    from loadtest.seed import seed_debts

    count = seed_debts(args.db, cfg.accounts, args.seed_debts)
    print(f"seeded {args.seed_debts} of debt on {count} accounts")


def _ledger(db: str | None, facts: Any, output: dict[str, Any], lines: list[str]) -> int:
    """Run the ledger check when a database is known; its verdict decides the exit code."""
    if not db:
        return EXIT_OK
    from loadtest.ledger_check import check_ledger

    verdict = check_ledger(db, facts)
    output["ledger_check"] = verdict.as_dict()
    lines += verdict.lines()
    return EXIT_OK if verdict.ok else EXIT_LEDGER


def run_in_reactor(main: Callable[[Any], Coroutine[Any, Any, T]]) -> T:
    """Run one coroutine on the global reactor and hand back its result.

    ``task.react`` would exit the process; we still have to print and check
    the ledger afterwards. The reactor cannot be restarted, hence one call
    per process (compare runs both targets inside it).
    """
    from twisted.internet import reactor

    outcome: list[Any] = []

    def start() -> None:
        done = Deferred.fromCoroutine(main(reactor))
        done.addBoth(outcome.append)
        done.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    reactor.run()
    if not outcome:
        raise KeyboardInterrupt
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]
