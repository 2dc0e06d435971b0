"""The ``billswitch`` command: run, migrate, keys, cards, billers, debts, fees, payments,
payers, settle, outbox, lmk, hsm-sim, biller-sim, loadtest.

Errors in the configuration or on the command line end with a one-line
message naming the file or option, and exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from twisted.internet.error import CannotListenError

from switch import (
    billers_cli,
    cards_cli,
    debts_cli,
    fees_cli,
    keys_cli,
    lmk_cli,
    metrics,
    outbox_cli,
    payers_cli,
    payments_cli,
    settle_cli,
    systemd,
)
from switch.config import ConfigError, Settings, check, load, show_settings
from switch.custody import CustodyError
from switch.existing_db import NoDatabase, open_existing

PROG = "billswitch"


def _common(p: argparse.ArgumentParser, default: Any = None) -> argparse.ArgumentParser:
    """--home, --config, --db on ``p``; ``default=SUPPRESS`` for the copies an action
    takes, so that they may come after the action without hiding the ones before it."""
    p.add_argument(
        "--home", type=Path, default=default, help="folder for the database and keys (./var)"
    )
    p.add_argument("--config", type=Path, default=default, help="TOML file overriding defaults")
    p.add_argument(
        "--db",
        default=default,
        help="SQLAlchemy URL, e.g. postgresql+psycopg2://postgres@127.0.0.1/test"
        " (or BILLSWITCH_DB)",
    )
    return p


def _with_actions(parser: argparse.ArgumentParser) -> None:
    """The common options on a command and on each of its actions."""
    _common(parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _common(sub, argparse.SUPPRESS)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("billswitch")
    except PackageNotFoundError:
        return "unknown (not installed)"


_EXAMPLES = """examples:
  billswitch run --demo          (public demo data and test LMK: never in production)
  billswitch lmk generate --out /etc/billswitch/lmk.txt
  billswitch run --config site.toml
  billswitch run --db postgresql+psycopg2://billswitch@db1:5432/switch --workers 2
  billswitch config check --config site.toml
  billswitch keys list --home /var/lib/billswitch
  billswitch cards reset-tries WAL:1f2e3d4c5b6a7980
  billswitch billers add MOB02 --name 'Mobile Top-up' --kind outline --currency 944
  billswitch billers set-key UTIL01 util01-public.pem
  billswitch fees add --biller TEL01 --percent 1 --min 50
  billswitch debts import UTIL01-20261101.xml   (its signature beside it: .xml.sig)
  billswitch payments export --business-day 2026-11-21
  billswitch payments public-key
  billswitch settle --business-day 2026-11-22   (a day missed at cut-over)
  billswitch outbox list --state parked
  billswitch payers add PC1000001 UTIL01:1000002 TEL01:5550001
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=__doc__.splitlines()[0],
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run",
        help="start the switch in the foreground",
        epilog="example: billswitch run --home /var/lib/billswitch --config site.toml",
    )
    _common(run)
    run.add_argument("--log-level", help="debug, info, warning, error")
    run.add_argument("--log-json", action="store_true", help="JSON log lines")
    run.add_argument("--debug", action="store_true", help="show the traceback of a failed start")
    run.add_argument("--workers", type=int, help="processes sharing the ports (default 1)")
    run.add_argument(
        "--demo",
        action="store_true",
        help="load the public demo data into an empty database, under the test LMK"
        ' (demo_data = true, [hsm] lmk = "test"): never in production',
    )
    run.add_argument("--worker", help=argparse.SUPPRESS)  # INDEX:FD, set by the supervisor
    run.add_argument("--worker-ports", help=argparse.SUPPRESS)  # name=port,...
    migrate = sub.add_parser(
        "migrate",
        help="apply database migrations and exit",
        epilog="example: billswitch migrate --db postgresql+psycopg2://postgres@127.0.0.1/test",
    )
    _common(migrate)
    config = sub.add_parser("config", help="check or show the effective configuration")
    config_actions = config.add_subparsers(dest="action", required=True)
    config_actions.add_parser(
        "check",
        help="validate the configuration: exit 0 if good, 2 with the problem",
        epilog="example: billswitch config check --config site.toml",
    )
    config_actions.add_parser(
        "show",
        help="print the effective configuration as TOML (passwords masked)",
        epilog="example: billswitch config show --config site.toml",
    )
    _with_actions(config)
    sub.add_parser(
        "loadtest", help="the load generator (see: billswitch loadtest --help)", add_help=False
    )
    sub.add_parser(
        "hsm-sim", help="the payShield-protocol HSM simulator (see: --help)", add_help=False
    )
    sub.add_parser(
        "biller-sim", help="the reference online biller server (see: --help)", add_help=False
    )
    _with_actions(keys_cli.add_arguments(sub))
    _with_actions(cards_cli.add_arguments(sub))
    _with_actions(billers_cli.add_arguments(sub))
    _with_actions(debts_cli.add_arguments(sub))
    _with_actions(payments_cli.add_arguments(sub))
    _common(settle_cli.add_arguments(sub))
    _with_actions(outbox_cli.add_arguments(sub))
    _with_actions(fees_cli.add_arguments(sub))
    _with_actions(payers_cli.add_arguments(sub))
    lmk_cli.add_arguments(sub)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return load(args.config, home=args.home, db=args.db)


def cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from switch import logs

    settings = _settings(args)
    if args.log_level:
        settings = replace(settings, log_level=args.log_level)
    if args.log_json:
        settings = replace(settings, log_json=True)
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError(f"--workers {args.workers}: at least 1")
        settings = replace(settings, workers=args.workers)
    if args.demo:
        settings = demo_settings(settings)
    check(settings)
    index: int | None = None
    if args.worker:  # INDEX:FD from the supervisor
        index, ready_fd = map(int, args.worker.split(":"))
    logs.configure(settings.log_level, settings.log_json, index)
    forbid_core_dumps()
    _raise_file_limit()
    if index is not None:
        return _run_worker(settings, index, ready_fd, args.worker_ports or "")
    if settings.workers > 1:
        return _run_supervisor(settings, args)
    return _run_node(settings)


def demo_settings(settings: Settings) -> Settings:
    """``--demo``: demo data, and the test LMK said explicitly (its keys are under it)."""
    from dataclasses import replace

    hsm = settings.hsm
    if hsm.url == "software" and not hsm.lmk:
        hsm = replace(hsm, lmk="test")
    elif hsm.url != "software":
        hsm = replace(hsm, allow_test_lmk=True)
    return replace(settings, demo_data=True, hsm=hsm)


def _run_node(settings: Settings, worker: int | None = None, ready_fd: int | None = None) -> int:
    """One switch process: prepare, listen, serve until SIGINT/SIGTERM, drain, stop."""
    from twisted.internet import reactor

    from switch.app import SwitchApp

    # The database threads release the GIL at every round trip; with the default 5 ms
    # switch interval each one then waits behind the busy reactor thread (convoy effect).
    sys.setswitchinterval(settings.gil_switch_interval)
    if worker is None:  # a worker's ports were reserved by its supervisor
        _check_ports_free(_listening(settings))
    app = SwitchApp(settings, reactor, worker)
    try:
        app.prepare()
        app.start()
    except BaseException:
        app.abort()  # releases every port and thread, so the process can exit
        raise
    reactor.addSystemEventTrigger("before", "shutdown", app.stop)
    metrics.BUILD.info({"version": _version(), "python": platform.python_version()})
    # A shell starts background jobs with SIGINT ignored; Ctrl-C must still stop us cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reactor.callWhenRunning(_summary, app)
    if ready_fd is None:
        # Said once the reactor runs, so its signal handlers are in place: a Ctrl-C or
        # SIGTERM from whoever waited for this line stops the switch cleanly.
        reactor.callWhenRunning(_ready, app.ports)
        reactor.addSystemEventTrigger("before", "shutdown", systemd.notify, "STOPPING=1")
    else:
        from switch.workers import report_ready, stop_when_orphaned

        report_ready(ready_fd, app.ports)
        stop_when_orphaned(reactor)
    reactor.run()
    return 0


def _summary(app: Any) -> None:
    """One line saying what this node is and runs on (switch/summary.py)."""
    import structlog

    from switch.summary import summary

    fields = summary(app.settings, app.ports, app.lmk, _version())
    structlog.get_logger("switch.start").info("started", **fields)


def _ready(ports: dict[str, int]) -> None:
    from switch.logs import announce

    announce("listening", f"listening {ports} (Ctrl-C stops)", ports=ports)
    systemd.notify("READY=1")


def _run_worker(settings: Settings, index: int, ready_fd: int, ports: str) -> int:
    """``--worker INDEX:FD --worker-ports name=port,...``: one of several processes.

    Started by the supervisor (switch/workers.py): FD is its ready pipe, and the
    ports are the ones it reserved (so port 0 in the configuration works too).
    """
    from dataclasses import replace

    bound = dict(item.split("=") for item in ports.split(",") if item)
    channels = tuple(
        replace(c, port=int(bound[c.name])) if c.name in bound else c for c in settings.channels
    )
    return _run_node(replace(settings, channels=channels), index, ready_fd)


def _run_supervisor(settings: Settings, args: argparse.Namespace) -> int:
    """Start ``settings.workers`` worker processes on shared ports and watch them."""

    from switch.app import check_demo, prepare_database
    from switch.cardholder import Hasher, load_or_create_key
    from switch.custody import open_custody
    from switch.private_files import make_home
    from switch.signing_key import load_or_create_signing_key
    from switch.workers import Supervisor, WorkerStartError, reserve_ports

    enabled = [c for c in settings.channels if c.enabled]
    held = reserve_ports([(c.name, c.host, c.port) for c in enabled])
    try:
        _check_ports_free(_listening(settings, channels=False, workers=settings.workers))
    except CannotListenError:
        for sock in held.values():
            sock.close()
        raise
    custody = open_custody(settings.hsm)  # each worker checks too; this one says it once
    check_demo(settings, custody)
    close = getattr(custody.hsm, "close", None)  # a TCP HSM's probe connection
    if close is not None:
        close()
    make_home(settings.home)
    hasher = Hasher(load_or_create_key(settings.home / "hash.key"))
    load_or_create_signing_key(settings.home)  # once, before the workers each look for it
    prepare_database(settings, hasher)
    ports = {name: sock.getsockname()[1] for name, sock in held.items()}
    spec = ",".join(f"{name}={port}" for name, port in ports.items())
    if args.db:
        os.environ["BILLSWITCH_DB"] = args.db  # inherited by the workers (_worker_argv)
    supervisor = Supervisor([*_worker_argv(args), "--worker-ports", spec], settings.workers)
    try:
        bound = supervisor.start()
    except WorkerStartError as exc:
        supervisor.stop()
        print(f"billswitch: a worker did not start: {exc}", file=sys.stderr)
        return 2
    if bound is None:  # SIGTERM or SIGINT while the workers started
        return supervisor.stop()
    for index, worker_ports in enumerate(bound):
        if "metrics" in worker_ports:
            ports["metrics" if index == 0 else f"metrics.{index}"] = worker_ports["metrics"]
    from switch.logs import announce

    text = f"listening {ports} ({settings.workers} workers; Ctrl-C stops)"
    announce("listening", text, ports=ports, workers=settings.workers)
    systemd.notify("READY=1")
    try:
        return supervisor.run()
    finally:
        for sock in held.values():
            sock.close()


def _worker_argv(args: argparse.Namespace) -> list[str]:
    """The command line of a worker: this run's options, less --workers and --db.

    The database URL may hold a password, and every user sees command lines
    (``ps``): it reaches the workers through their environment (BILLSWITCH_DB,
    readable by the owner only), which ``_run_supervisor`` sets.
    """
    argv = [sys.executable, "-m", "switch.cli", "run"]
    for option, value in (("--home", args.home), ("--config", args.config)):
        if value is not None:
            argv += [option, str(value)]
    if args.log_level:
        argv += ["--log-level", args.log_level]
    if args.log_json:
        argv.append("--log-json")
    if args.demo:
        argv.append("--demo")
    return argv


def _listening(
    settings: Settings, channels: bool = True, workers: int = 1
) -> list[tuple[str, int]]:
    """The fixed (non-zero) ports this start will listen on: channels and metrics."""
    ports = [(c.host, c.port) for c in settings.channels if channels and c.enabled and c.port]
    if settings.metrics_port:
        ports += [("127.0.0.1", settings.metrics_port + i) for i in range(workers)]
    return ports


def _check_ports_free(ports: list[tuple[str, int]]) -> None:
    """Fail before migrating or loading anything if a port is taken (CannotListenError)."""
    import socket

    for host, port in ports:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted binds
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise CannotListenError(host, port, exc) from None


def _raise_file_limit() -> None:
    """Every connection is a file descriptor: take the hard limit, not the 1024 default."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # keep the limit we have; the log shows refused connections if it bites


def _migrated_engine(args: argparse.Namespace) -> Engine:
    """The configured database, its schema brought up to date (what every command needs)."""
    from switch.ledger.database import make_engine, migrate
    from switch.private_files import make_home, private_database

    settings = _settings(args)
    make_home(settings.home)
    private_database(settings.db_url())
    engine = make_engine(settings.db_url(), timeouts=settings.database.for_maintenance())
    migrate(engine)
    return engine


def cmd_migrate(args: argparse.Namespace) -> int:
    _migrated_engine(args).dispose()
    print("billswitch: schema is up to date")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    """Keys are made and imported by the configured HSM, its LMK checked as at start."""
    from hsm_sim.interface import HsmFailure
    from switch.custody import open_custody

    forbid_core_dumps()  # clear components pass through this process (software HSM)
    settings = _settings(args)
    try:
        engine = open_existing(settings)
    except NoDatabase as exc:
        return keys_cli.fail(str(exc))
    try:
        custody = open_custody(settings.hsm) if args.action in keys_cli.NEEDS_HSM else None
        if custody is not None and custody.warning():
            print(f"billswitch keys: WARNING: {custody.warning()}", file=sys.stderr)
        return keys_cli.run(args, engine, custody, settings.hsm.key_grace)
    except (keys_cli.KeyCommandError, CustodyError, HsmFailure) as exc:
        return keys_cli.fail(str(exc))
    finally:
        engine.dispose()


def cmd_lmk(args: argparse.Namespace) -> int:
    forbid_core_dumps()
    try:
        return lmk_cli.run(args)
    except lmk_cli.LmkCommandError as exc:
        return lmk_cli.fail(str(exc))


def forbid_core_dumps() -> None:
    from hsm_sim.core_dumps import forbid_core_dumps as forbid

    forbid()


def cmd_cards(args: argparse.Namespace) -> int:
    try:
        engine = open_existing(_settings(args))
    except NoDatabase as exc:
        return cards_cli.fail(str(exc))
    try:
        return cards_cli.run(args, engine)
    except cards_cli.CardCommandError as exc:
        return cards_cli.fail(str(exc))
    finally:
        engine.dispose()


def _on_database(
    args: argparse.Namespace,
    module: Any,
    error: type[Exception],
    extra: Callable[[Settings], tuple[Any, ...]] = lambda settings: (),
    unbounded: bool = False,
) -> int:
    """A command on the existing database (read only for a ``list`` action): the module's
    ``run``, its errors and a missing database as one line each. ``unbounded``: no bound
    on one statement (a day's sums), the usual bound on one lock wait."""
    from dataclasses import replace

    settings = _settings(args)
    timeouts = replace(settings.database, statement_timeout=0) if unbounded else None
    try:
        engine = open_existing(
            settings, write=getattr(args, "action", None) != "list", timeouts=timeouts
        )
    except NoDatabase as exc:
        return module.fail(str(exc))
    try:
        return module.run(args, engine, *extra(settings))
    except error as exc:
        return module.fail(str(exc))
    finally:
        engine.dispose()


def cmd_billers(args: argparse.Namespace) -> int:
    return _on_database(
        args,
        billers_cli,
        billers_cli.BillerCommandError,
        lambda settings: (settings.home, settings.reference_refresh),
    )


def cmd_outbox(args: argparse.Namespace) -> int:
    return _on_database(args, outbox_cli, outbox_cli.OutboxCommandError)


def cmd_fees(args: argparse.Namespace) -> int:
    return _on_database(
        args, fees_cli, fees_cli.FeeCommandError, lambda settings: (settings.reference_refresh,)
    )


def cmd_payers(args: argparse.Namespace) -> int:
    return _on_database(args, payers_cli, payers_cli.PayerCommandError)


def cmd_debts(args: argparse.Namespace) -> int:
    """``sign`` needs no database; ``import`` the existing one, its writes in one
    transaction (SQLite: the write lock taken first), with no bound on one statement (a
    million debts stream through one COPY) but the usual bound on one lock wait."""
    from dataclasses import replace

    try:
        if args.action == "sign":
            return debts_cli.run_sign(args)
        settings = _settings(args)
        timeouts = replace(settings.database, statement_timeout=0)
        try:
            engine = open_existing(settings, write=True, timeouts=timeouts)
        except NoDatabase as exc:
            return debts_cli.fail(str(exc))
        try:
            return debts_cli.run_import(args, engine, settings.debt_file_max_bytes)
        finally:
            engine.dispose()
    except debts_cli.DebtCommandError as exc:
        return debts_cli.fail(str(exc))


def cmd_payments(args: argparse.Namespace) -> int:
    """``public-key`` needs only the home (its key made if missing); ``export`` the existing
    database, read with no bound on one statement (a day's rows stream through one query)."""
    from dataclasses import replace

    from switch.private_files import make_home
    from switch.signing_key import SigningKeyError

    settings = _settings(args)
    try:
        if args.action == "public-key":
            make_home(settings.home)
            return payments_cli.run_public_key(settings.home, args.pem)
        timeouts = replace(settings.database, statement_timeout=0)
        try:
            engine = open_existing(settings, timeouts=timeouts)
        except NoDatabase as exc:
            return payments_cli.fail(str(exc))
        try:
            make_home(settings.home)  # a PostgreSQL node's home may not exist yet
            return payments_cli.run_export(args, engine, settings.home)
        finally:
            engine.dispose()
    except (payments_cli.PaymentCommandError, SigningKeyError) as exc:
        return payments_cli.fail(str(exc))


def cmd_settle(args: argparse.Namespace) -> int:
    """The day's sums may take long on a big day: no bound on one statement; SQLite
    transactions take the write lock first. The job's log lines go to stderr from
    warnings up (its summary is the command's output)."""
    from switch import logs

    settings = _settings(args)
    logs.configure("warning", settings.log_json)
    return _on_database(
        args, settle_cli, settle_cli.SettleCommandError, lambda s: (s,), unbounded=True
    )


def cmd_config(args: argparse.Namespace) -> int:
    """``config check`` loads and validates (errors reach main's one-line handler)."""
    settings = _settings(args)
    if args.action == "show":
        print(show_settings(settings), end="")
    else:
        print(f"{PROG}: configuration is valid")
    return 0


COMMANDS = {
    "run": cmd_run,
    "migrate": cmd_migrate,
    "config": cmd_config,
    "keys": cmd_keys,
    "cards": cmd_cards,
    "billers": cmd_billers,
    "debts": cmd_debts,
    "payments": cmd_payments,
    "settle": cmd_settle,
    "outbox": cmd_outbox,
    "fees": cmd_fees,
    "payers": cmd_payers,
    "lmk": cmd_lmk,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["loadtest"]:
        from loadtest.cli import main as loadtest_main

        return loadtest_main(argv[1:], prog=f"{PROG} loadtest")
    if argv[:1] == ["hsm-sim"]:
        from hsm_sim.__main__ import main as hsm_sim_main

        return hsm_sim_main(argv[1:], prog=f"{PROG} hsm-sim")
    if argv[:1] == ["biller-sim"]:
        from routing.biller_sim.__main__ import main as biller_sim_main

        return biller_sim_main(argv[1:], prog=f"{PROG} biller-sim")
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        return _one_line(exc)


# How a failure reads, by its type (first match): one line, exit status 2.
_FAILURES: tuple[tuple[type | tuple[type, ...], Callable[[Any], str]], ...] = (
    (ConfigError, lambda exc: f"configuration error: {exc}"),
    (CustodyError, str),
    (
        CannotListenError,
        lambda exc: f"cannot listen on {exc.interface}:{exc.port}: {exc.socketError}",
    ),
    (OSError, str),
    ((ArgumentError, SQLAlchemyError), lambda exc: f"database error: {_first_line(exc)}"),
    (
        Exception,
        lambda exc: (
            f"start-up failed: {type(exc).__name__}: {_first_line(exc)}"
            " (--debug shows the traceback)"
        ),
    ),
)


def _one_line(exc: Exception) -> int:
    """Any failure as one line on stderr, exit status 2 (``--debug`` shows the traceback)."""
    describe = next(text for kind, text in _FAILURES if isinstance(exc, kind))
    print(f"{PROG}: {describe(exc)}", file=sys.stderr)
    return 2


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
