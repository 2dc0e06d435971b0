"""Operator commands (issue 10): read-only commands never create a database, lists have
headers and major units, key commands are safe, ``--version`` and ``config check|show``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine, text

from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    """An earlier test's ``run`` bound the logs to its own (now closed) captured stderr."""
    structlog.reset_defaults()


def _demo(home: Path) -> None:
    """Demo data, and a configuration naming the test LMK (the demo keys are under it)."""
    (home / "billswitch.toml").parent.mkdir(parents=True, exist_ok=True)
    (home / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    settings = load(home / "billswitch.toml", home=home)
    prepare_database(settings, Hasher(load_or_create_key(home / "hash.key")))


def _with_config(home: Path, args: list[str]) -> list[str]:
    return [*args, "--config", str(home / "billswitch.toml")]


def _out(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.mark.parametrize(
    "command", [["cards", "list"], ["keys", "list"], ["billers", "list"], ["outbox", "list"]]
)
def test_read_only_commands_do_not_create_a_database(
    tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "nowhere"
    assert main([*command, "--home", str(home)]) == 2
    out, err = _out(capsys)
    assert out == ""
    assert f"no database at {home.resolve() / 'billswitch.db'}" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not home.exists()


def test_a_database_behind_the_schema_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'billswitch.db'}")
    with engine.begin() as conn:
        conn.execute(text("create table unrelated (x int)"))
    engine.dispose()
    assert main(["keys", "list", "--home", str(tmp_path)]) == 2
    assert "holds no billswitch schema (run 'billswitch migrate' first)" in _out(capsys)[1]


def test_lists_have_headers_and_amounts_in_major_units(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _demo(tmp_path)
    capsys.readouterr()
    assert main(["cards", "list", "--home", str(tmp_path)]) == 0
    header, card = _out(capsys)[0].splitlines()
    assert header.split() == ["CARD", "WALLET", "FUNDS", "TRIES", "STATUS"]
    assert card.split()[0] == "999000******0001"
    assert card.split()[2:] == ["10000.00", "AZN", "0", "active"]  # 1,000,000 minor units
    assert main(["keys", "list", "--home", str(tmp_path)]) == 0
    lines = _out(capsys)[0].splitlines()
    assert lines[0].split() == ["ID", "OWNER", "KIND", "STATE", "KCV"]
    assert any(line.split()[1:] == ["100001:ATM00001", "TAK", "active", "7B8358"] for line in lines)


def test_empty_key_list_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["migrate", "--home", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["keys", "--home", str(tmp_path), "list"]) == 0
    assert _out(capsys)[0] == "no keys\n"


def test_keys_refuse_an_unknown_owner(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _demo(tmp_path)
    capsys.readouterr()
    for owner in ("100001:ATM09999", "999999:", "100001", "issuers"):
        args = ["keys", "generate", "--owner", owner, "--kind", "TAK", "--home", str(tmp_path)]
        assert main(_with_config(tmp_path, args)) == 2
        assert f"unknown owner {owner!r}" in _out(capsys)[1]


def _key_states(home: Path, owner: str, kind: str) -> list[tuple[str, str]]:
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "select state, retire_at from keys where owner = :o and key_type = :k order by id"
            ),
            {"o": owner, "k": kind},
        ).all()
    engine.dispose()
    return [(state, str(retire_at)) for state, retire_at in rows]


def test_replacing_an_active_key_needs_replace_and_keeps_the_grace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _demo(tmp_path)
    capsys.readouterr()
    args = ["keys", "generate", "--owner", "100001:ATM00001", "--kind", "TAK"]
    args = _with_config(tmp_path, args)
    assert main([*args, "--home", str(tmp_path)]) == 2
    assert "has an active TAK (KCV 7B8358); add --replace" in _out(capsys)[1]
    assert [s for s, _ in _key_states(tmp_path, "100001:ATM00001", "TAK")] == ["active"]
    assert main([*args, "--replace", "--home", str(tmp_path)]) == 0
    assert "previous TAK (KCV 7B8358) keeps working for 300 s" in _out(capsys)[0]
    (old_state, retire_at), (new_state, _) = _key_states(tmp_path, "100001:ATM00001", "TAK")
    assert (old_state, new_state) == ("retiring", "active") and retire_at != "None"


def test_retire_asks_for_confirmation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _demo(tmp_path)
    capsys.readouterr()
    done = subprocess.run(
        [sys.executable, "-m", "switch.cli", "keys", "retire", "1", "--home", str(tmp_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "billswitch keys: retiring key 1 needs confirmation: add --yes\n"
    assert _key_states(tmp_path, "100001:ATM00001", "TMK")[0][0] == "active"  # key 1: a TMK


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert _out(capsys)[0].startswith("billswitch 0.")


def test_config_check_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text('cutover = "22:30"\n[channels.pos]\nport = 9584\n')
    assert main(["config", "check", "--config", str(good)]) == 0
    assert _out(capsys)[0] == "billswitch: configuration is valid\n"
    bad = tmp_path / "bad.toml"
    bad.write_text("[ledger]\nbatch_mux = 5\n")
    assert main(["config", "check", "--config", str(bad)]) == 2
    assert _out(capsys)[1].startswith(f"billswitch: configuration error: {bad}")
    url = "postgresql+psycopg2://switch:s3cret@db1:5432/ledger"
    assert main(["config", "show", "--config", str(good), "--db", url]) == 0
    shown = _out(capsys)[0]
    assert (
        "s3cret" not in shown and 'db = "postgresql+psycopg2://switch:***@db1:5432/ledger"' in shown
    )
    assert 'cutover = "22:30"' in shown and "[channels.pos]" in shown and "port = 9584" in shown
    reread = tmp_path / "shown.toml"
    reread.write_text(shown.replace(url.replace("s3cret", "***"), url))
    assert load(reread) == load(good, db=url)


def test_hsm_sim_speaks_like_the_rest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hsm-sim", "--header-length", "-1"]) == 2
    assert _out(capsys)[1].startswith("billswitch hsm-sim: --header-length and --delay must be")


def test_hsm_sim_warns_of_the_test_lmk_and_says_when_it_stops() -> None:
    import signal

    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "hsm-sim", "--port", "0", "--lmk", "test"],
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()
    warning = proc.stderr.readline()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0
    assert first.startswith("billswitch hsm-sim: listening 127.0.0.1:")
    assert warning.startswith("billswitch hsm-sim: WARNING: running the public payShield test LMK")
    assert rest.splitlines()[-1] == "billswitch hsm-sim: stopped"


HELPS = [
    [], ["run"], ["migrate"], ["config", "check"], ["config", "show"], ["keys", "generate"],
    ["keys", "import"], ["keys", "retire"], ["cards", "list"], ["cards", "reset-tries"],
    ["lmk", "generate"], ["hsm-sim"], ["loadtest"], ["billers", "list"], ["billers", "add"],
    ["billers", "set"],
]  # fmt: skip


@pytest.mark.parametrize("command", HELPS, ids=lambda c: " ".join(c) or "billswitch")
def test_every_help_has_an_example_under_one_program_name(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    text = _out(capsys)[0]
    assert text.startswith(f"usage: billswitch {' '.join(command)}".rstrip())
    assert "example" in text and "billswitch " in text.split("example", 1)[1]
