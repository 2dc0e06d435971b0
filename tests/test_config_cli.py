"""Configuration and command-line errors: one clear line naming the file and setting."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from switch.cli import main
from switch.config import ConfigError, load


@pytest.fixture(autouse=True)
def _unconfigured_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    """``main(["run", ...])`` would configure logging (cached loggers) onto this test's
    captured stderr, which is closed after it: later tests in this process would then
    log into a closed file. These tests are about errors, not log lines."""
    monkeypatch.setattr("switch.logs.configure", lambda *args, **kwargs: None)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "billswitch.toml"
    path.write_text(text)
    return path


def test_file_overrides_defaults(tmp_path: Path) -> None:
    path = _write(tmp_path, 'cutover = "22:30"\n[channels.pos]\nframing = "ascii4"\ntpdu = true\n')
    settings = load(path)
    assert settings.cutover == time(22, 30)
    pos = {c.name: c for c in settings.channels}["pos"]
    assert (pos.framing, pos.tpdu, pos.port) == ("ascii4", True, 8584)


def test_deadline_and_database_timeouts_from_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "[ledger]\ndeadline = 4.5\n[database]\nlock_timeout = 2\n")
    settings = load(path)
    assert settings.ledger.deadline == 4.5
    assert settings.database.lock_timeout == 2
    assert settings.database.statement_timeout == 5.0  # the default stays
    assert load().ledger.deadline == 10.0


def test_db_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSWITCH_DB", "postgresql+psycopg2://u@h/db")
    assert load().db_url() == "postgresql+psycopg2://u@h/db"


def test_request_retention_defaults_well_under_a_year(tmp_path: Path) -> None:
    assert load().ledger.request_retention_days == 35
    path = _write(tmp_path, "[ledger]\nrequest_retention_days = 299\npurge_every = 60\n")
    assert (load(path).ledger.request_retention_days, load(path).ledger.purge_every) == (299, 60)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('cutover = "25:00"\n', "cutover = '25:00'"),
        ("[channels.atm]\nprot = 1\n", "[channels.atm] unknown setting(s) ['prot']"),
        ('[channels.atm]\nport = "x"\n', "[channels.atm] port = 'x': expected int"),
        ('[channels.atm]\nframing = "ascii2"\n', "framing = 'ascii2': one of"),
        ("x = [\n", "billswitch.toml"),
        ("workers = 0\n", "workers = 0: must be from 1 to 64"),
        ("[ledger]\ndeadline = 0\n", "[ledger] deadline = 0: must be more than 0"),
        ('[database]\nstatement_timeout = "5s"\n', "statement_timeout = '5s': expected float"),
        ("[database]\nstatment_timeout = 5\n", "[database] unknown setting(s)"),
        (
            "[ledger]\nrequest_retention_days = 300\n",
            "request_retention_days = 300: must be from 1 to 299",
        ),
        (
            "[ledger]\nrequest_retention_days = 0\n",
            "request_retention_days = 0: must be from 1 to 299",
        ),
        ("[ledger]\npurge_every = 0\n", "purge_every = 0: must be more than 0"),
    ],
)
def test_bad_settings_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_cli_reports_config_errors_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "[ledger]\nbatch_max = true\n")
    assert main(["run", "--config", str(path), "--home", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("billswitch: configuration error:")
    assert "Traceback" not in err


def test_cli_refuses_fewer_than_one_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--home", str(tmp_path), "--workers", "0"]) == 2
    assert capsys.readouterr().err == "billswitch: configuration error: --workers 0: at least 1\n"


def test_workers_that_cannot_listen_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as taken:  # a plain listener: SO_REUSEPORT cannot share its port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = f'metrics_port = 0\n[hsm]\nlmk = "test"\n[channels.atm]\nport = {port}\n'
        path = _write(tmp_path, config)
        code = main(["run", "--config", str(path), "--home", str(tmp_path), "--workers", "2"])
    assert code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"billswitch: cannot listen on 127.0.0.1:{port}:")


def test_cli_reports_database_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--home", str(tmp_path), "--db", "nosuchdb://x"]) == 2
    assert capsys.readouterr().err == (
        "billswitch: configuration error: db = 'nosuchdb://x': no such database dialect\n"
    )
    nobody = "postgresql+psycopg2://postgres@127.0.0.1:1/x"  # nothing listens on port 1
    assert main(["migrate", "--home", str(tmp_path), "--db", nobody]) == 2
    assert capsys.readouterr().err.startswith("billswitch: database error:")


def test_migrate_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--home", str(tmp_path)]) == 0
    assert (tmp_path / "billswitch.db").exists()
