"""Starting and running the switch as an operator would (issue 10): bad settings stop the start
at once with one line naming them, holding no port; JSON logs; health; systemd."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from switch.config import ConfigError, Settings, load
from switch.settings_table import RULES, markdown, update_readme

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _run(home: Path, config: str, *args: str) -> tuple[subprocess.CompletedProcess, list[int]]:
    """``billswitch run`` on channel and metrics ports of its own, plus ``config`` (its
    top-level settings first, then its tables)."""
    ports = [_free_port() for _ in range(4)]
    top, bracket, tables = config.partition("[")
    text = (
        top
        + ("" if "metrics_port" in top else f"metrics_port = {ports[3]}\n")
        + "".join(
            f"[channels.{name}]\nport = {port}\n"
            for name, port in zip(("atm", "pos", "host"), ports, strict=False)
        )
        + bracket
        + tables
    )
    path = home / "site.toml"
    path.write_text(text)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "switch.cli",
            "run",
            "--demo",
            "--home",
            str(home),
            "--config",
            str(path),
        ]
        + list(args),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return done, ports


BAD = [
    ("metrics_port = -1\n", "metrics_port = -1: must be from 0 to 65535"),
    ("[channels.extra]\nport = 70000\n", "[channels.extra] port = 70000: must be from 0 to 65535"),
    ('timezone = "Mars/Olympus"\n', "timezone = 'Mars/Olympus': not a time zone"),
    ('log_level = "loud"\n', "log_level = 'loud': one of debug, info, warning, error"),
    ('[hsm]\nurl = "foo://bar"\n', "[hsm] url = 'foo://bar': either \"software\""),
    ('db = "mysql://u@localhost/x"\n', "db = 'mysql://u@localhost/x': its driver is not installed"),
    ('[issuer]\nbins = "999000"\n', "[issuer] bins = '999000': expected a list of strings"),
    ("ledger = 5\n", "ledger = 5: must be a table [ledger]"),
]


@pytest.mark.parametrize(("config", "message"), BAD)
def test_a_bad_setting_exits_at_once_naming_it(tmp_path: Path, config: str, message: str) -> None:
    done, ports = _run(tmp_path, config)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("billswitch: configuration error: ")
    assert message in lines[0]
    assert all(_bindable(p) for p in ports)
    assert not (tmp_path / "billswitch.db").exists()  # nothing migrated or loaded


def test_channels_must_be_tables(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("channels = 5\n")
    with pytest.raises(ConfigError, match=r"channels = 5: must be a table \[channels.NAME\]"):
        load(path)
    path.write_text("[channels]\natm = 5\n")
    with pytest.raises(ConfigError, match=r"channels = 5: must be a table \[channels.atm\]"):
        load(path)


def test_unknown_keys_suggest_the_nearest(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[ledger]\nbatch_mux = 5\n")
    with pytest.raises(ConfigError, match=r"\['batch_mux'\] \(did you mean 'batch_max'\?\)"):
        load(path)
    path.write_text("cutvoer = '22:00'\n")
    with pytest.raises(ConfigError, match=r"did you mean 'cutover'"):
        load(path)


def test_a_taken_port_stops_the_start_before_the_database(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done, ports = _run(tmp_path, f"[channels.extra]\nport = {port}\n")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"billswitch: cannot listen on 127.0.0.1:{port}: [Errno 98] Address already in use"
    )
    assert not (tmp_path / "billswitch.db").exists()
    assert all(_bindable(p) for p in ports if p != port)


def test_other_start_failures_are_one_line_and_debug_shows_the_traceback(tmp_path: Path) -> None:
    nobody = f"postgresql+psycopg2://postgres@127.0.0.1:{_free_port()}/x"
    done, _ = _run(tmp_path, "", "--db", nobody)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr  # log lines may come first (HSM ready, warnings)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("billswitch: database error: (psycopg2.OperationalError)")
    debug, _ = _run(tmp_path, "", "--db", nobody, "--debug")
    assert debug.returncode != 0 and "Traceback (most recent call last)" in debug.stderr


def test_every_setting_has_a_rule_and_every_rule_a_setting() -> None:
    names = set()
    for f in fields(Settings):
        if f.name == "channels":
            names |= {f"channels.*.{g.name}" for g in fields(Settings().channels[0])} - {
                "channels.*.name"
            }
        elif hasattr(getattr(Settings(), f.name), "__dataclass_fields__"):
            names |= {f"{f.name}.{g.name}" for g in fields(getattr(Settings(), f.name))}
        else:
            names.add(f.name)
    assert names == set(RULES)


def test_the_defaults_are_valid() -> None:
    assert load() == Settings()


def test_readme_lists_every_setting_as_the_table_says() -> None:
    readme = (ROOT / "README.md").read_text()
    assert markdown(Settings()) in readme
    assert update_readme(readme, Settings()) == readme, "run: python -m switch.settings_table"


def test_log_json_is_json_only(tmp_path: Path) -> None:
    """Every line of a start and stop under --log-json is a JSON object; Alembic is quiet."""
    import json
    import signal
    import time

    ports = [_free_port() for _ in range(4)]
    config = tmp_path / "site.toml"
    config.write_text(
        f"metrics_port = {ports[3]}\n"
        + "".join(
            f"[channels.{n}]\nport = {p}\n"
            for n, p in zip(("atm", "pos", "host"), ports[:3], strict=True)
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "run", "--demo", "--home", str(tmp_path),
         "--config", str(config), "--log-json"],
        stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if '"event": "listening"' in line:
            break
    proc.send_signal(signal.SIGINT)
    lines += proc.communicate(timeout=120)[1].splitlines(keepends=True)
    events = [json.loads(line) for line in lines]  # fails on any line that is not JSON
    assert {"listening", "demo data loaded", "stopped"} <= {e["event"] for e in events}
    assert not any("Running upgrade" in e["event"] for e in events)
    listening = next(e for e in events if e["event"] == "listening")
    assert listening["ports"]["atm"] == ports[0]
    started = next(e for e in events if e["event"] == "started")  # the start-up summary
    assert started["database"] == f"sqlite:///{(tmp_path / 'billswitch.db').resolve()}"
    assert (started["hsm"], started["lmk"], started["admin"]) == (
        "software",
        "7D2227",
        "not built yet",
    )
    assert f"atm ATM 127.0.0.1:{ports[0]} binary2 mac=x919 tls=off" in started["channels"]
    assert started["metrics"] == f"127.0.0.1:{ports[3]}" and started["version"].startswith("0.")
    warnings = [e["event"] for e in events if e["level"] == "warning"]
    assert any("TEST LMK" in w for w in warnings)  # test material: a warning line each
    assert any("DEMO MATERIAL" in w for w in warnings)


def test_health_readiness_systemd_and_build_info(tmp_path: Path) -> None:
    """/healthz and /readyz answer on the metrics port, systemd hears READY=1 and
    STOPPING=1, the build-info metric names the version."""
    import json
    import signal
    import urllib.request

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(120)
    ports = [_free_port() for _ in range(4)]
    config = tmp_path / "site.toml"
    config.write_text(
        f"metrics_port = {ports[3]}\n"
        + "".join(
            f"[channels.{n}]\nport = {p}\n"
            for n, p in zip(("atm", "pos", "host"), ports[:3], strict=True)
        )
    )
    env = dict(__import__("os").environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "run", "--demo", "--home", str(tmp_path),
         "--config", str(config)],
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert notify.recv(100) == b"READY=1"
        base = f"http://127.0.0.1:{ports[3]}"
        with urllib.request.urlopen(f"{base}/healthz", timeout=60) as answer:
            assert (answer.status, answer.read()) == (200, b"ok\n")
        with urllib.request.urlopen(f"{base}/readyz", timeout=60) as answer:
            body = json.loads(answer.read())
            assert answer.status == 200
        assert body["ready"] is True and body["checks"]["database"] == "ok"
        assert body["checks"]["hsm"] == "ok"
        with urllib.request.urlopen(f"{base}/metrics", timeout=60) as answer:
            text = answer.read().decode()
        assert 'billswitch_build_info{python="' in text and 'version="0.' in text
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(100) == b"STOPPING=1"
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()


def test_readyz_names_an_hsm_that_does_not_answer(tmp_path: Path) -> None:
    """A node whose HSM stops answering (the simulator process frozen: its sockets stay
    open) is unready, 503 with the check named, and the probe itself answers."""
    import json
    import re
    import signal
    import time
    import urllib.error
    import urllib.request

    log = tmp_path / "hsm.log"
    with open(log, "wb") as out:
        hsm = subprocess.Popen(
            [sys.executable, "-m", "hsm_sim", "--port", "0", "--lmk", "test"],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    proc = None
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"listening [\d.]+:(\d+)", log.read_text())):
            assert time.monotonic() < deadline and hsm.poll() is None, log.read_text()
            time.sleep(0.05)
        ports = [_free_port() for _ in range(4)]
        config = tmp_path / "site.toml"
        config.write_text(
            f"metrics_port = {ports[3]}\n"
            + f'[hsm]\nurl = "tcp://127.0.0.1:{found.group(1)}"\ntimeout = 0.5\n'
            + "".join(
                f"[channels.{n}]\nport = {p}\n"
                for n, p in zip(("atm", "pos", "host"), ports[:3], strict=True)
            )
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "switch.cli", "run", "--demo", "--home", str(tmp_path),
             "--config", str(config)],
            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        assert proc.stderr is not None
        while "billswitch: listening" not in proc.stderr.readline():
            assert proc.poll() is None
        base = f"http://127.0.0.1:{ports[3]}/readyz"
        with urllib.request.urlopen(base, timeout=60) as answer:
            assert answer.status == 200
        hsm.send_signal(signal.SIGSTOP)
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(base, timeout=60)
        assert answer.value.code == 503
        body = json.loads(answer.value.read())
        assert body["ready"] is False and body["checks"]["database"] == "ok"
        assert body["checks"]["hsm"].startswith("failed: ")
    finally:
        hsm.send_signal(signal.SIGCONT)
        for p in (proc, hsm):
            if p is None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=120)
            finally:
                if p.poll() is None:
                    p.kill()


def test_supervisor_tells_systemd_ready_and_stopping(tmp_path: Path) -> None:
    import os
    import signal

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(120)
    ports = [_free_port() for _ in range(5)]
    config = tmp_path / "site.toml"
    config.write_text(
        f"metrics_port = {ports[3]}\n"
        + "".join(
            f"[channels.{n}]\nport = {p}\n"
            for n, p in zip(("atm", "pos", "host"), ports[:3], strict=True)
        )
    )
    env = dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "run", "--demo", "--home", str(tmp_path),
         "--config", str(config), "--workers", "2"],
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    try:
        assert notify.recv(100) == b"READY=1"  # from the supervisor only, once
        proc.send_signal(signal.SIGTERM)
        assert notify.recv(100) == b"STOPPING=1"
        assert proc.wait(timeout=120) == 0
        notify.settimeout(0.1)
        with pytest.raises(TimeoutError):
            notify.recv(100)  # the workers said nothing of their own
    finally:
        if proc.poll() is None:
            proc.kill()
        notify.close()


def test_the_summary_never_shows_a_database_password() -> None:
    from dataclasses import replace

    from switch.summary import summary

    settings = replace(Settings(), db="postgresql+psycopg2://switch:s3cret@db1:5432/ledger")
    fields = summary(settings, {"atm": 1, "pos": 2, "host": 3}, "1A2B3C", "0.1.0")
    assert fields["database"] == "postgresql+psycopg2://switch:***@db1:5432/ledger"
    assert "s3cret" not in repr(fields) and fields["metrics"] == "off"
