"""Key custody (issue 9 items 1-3, 9) over real processes: which LMK, whose files, no demo.

- The switch runs under the LMK its configuration names (a file from ``billswitch lmk
  generate``, or the test LMK said explicitly and warned of); with none it does not start.
- A TCP HSM's LMK (NC) is checked before the switch listens.
- ``billswitch keys`` makes and forms keys through the configured HSM (A4 over TCP), and
  names the LMK by its check value.
- Home 0700, database 0600; no core dumps in the switch or the simulator.
- Demo data only on demand, warned of at every start.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from hsm_sim.crypto import des, kcv, lmk
from tests.switch_process import CONFIG, SwitchProcess

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
WAIT = 60
COMPONENTS = ("0123456789ABCDEF0123456789ABCDEF", "1032547698BADCFE1032547698BADCFE")


def billswitch(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "switch.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=ENV,
        timeout=WAIT,
    )


def run_until_exit(home: Path, config: str, *args: str) -> tuple[int | None, str]:
    """``billswitch run`` expected to refuse: its exit status (None if it kept running)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "billswitch.toml"
    path.write_text(CONFIG.format(extra=config, top=""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "switch.cli", "run", "--home", str(home), "--config", str(path)]
        + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )
    try:
        out = proc.communicate(timeout=WAIT)[0]
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        return None, proc.communicate(timeout=WAIT)[0]


def make_lmk(path: Path) -> str:
    """An LMK file made by the command; its check value."""
    done = billswitch("lmk", "generate", "--out", str(path))
    assert done.returncode == 0, done.stderr
    return lmk.lmk_check_value(lmk.load_lmk_file(path))


def log_events(proc: SwitchProcess) -> list[dict[str, object]]:
    """The JSON log lines of a switch started with --log-json."""
    events = []
    for line in proc.log_text().splitlines():
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def warnings_of(proc: SwitchProcess, words: str) -> list[dict[str, object]]:
    return [e for e in log_events(proc) if e.get("level") == "warning" and words in str(e["event"])]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def core_limit(pid: int) -> str:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max core file size"):
            return line.split()[4]
    raise AssertionError("no core limit line")


@contextmanager
def simulator(tmp_path: Path, lmk_arg: str) -> Iterator[tuple[int, int]]:
    """``hsm_sim --lmk lmk_arg`` on a free port: (port, pid)."""
    log = tmp_path / f"hsm-{time.monotonic_ns()}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hsm_sim", "--port", "0", "--lmk", lmk_arg],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=ENV,
        )
    try:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and proc.poll() is None:
            found = re.search(r"listening [\d.]+:(\d+)", log.read_text())
            if found:
                yield int(found.group(1)), proc.pid
                return
            time.sleep(0.05)
        raise RuntimeError("hsm_sim did not start: " + log.read_text())
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=WAIT)


# ---------------------------------------------------------------- item 1: the LMK is ours


def test_run_without_an_lmk_does_not_start(tmp_path: Path) -> None:
    status, out = run_until_exit(tmp_path / "home", "")
    assert status == 2, out
    assert "[hsm] lmk is not set" in out and "Traceback" not in out
    assert not (tmp_path / "home" / "billswitch.db").exists()
    assert not (tmp_path / "elsewhere").exists()  # nothing created before the LMK is known
    status, out = run_until_exit(tmp_path / "home", "", "--home", str(tmp_path / "elsewhere"))
    assert status == 2 and not (tmp_path / "elsewhere").exists()


def test_lmk_generate_writes_0600_names_check_values_and_never_overwrites(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lmk.txt"
    done = billswitch("lmk", "generate", "--out", str(path), "--components", "3")
    assert done.returncode == 0, done.stderr
    check = lmk.lmk_check_value(lmk.load_lmk_file(path))
    assert mode(path) == 0o600
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == [f"component {n}" for n in (1, 2, 3)]
    assert f"LMK check value {check}" in done.stdout and not lmk.is_test_lmk(check)
    before = path.read_text()
    again = billswitch("lmk", "generate", "--out", str(path))
    assert again.returncode == 2 and "never overwritten" in again.stderr
    assert path.read_text() == before
    assert (
        billswitch("lmk", "generate", "--out", str(tmp_path / "x"), "--components", "1").returncode
        == 2
    )


def test_lmk_from_typed_components_is_their_xor(tmp_path: Path) -> None:
    first, second = lmk.random_lmk(), lmk.random_lmk()
    typed = "".join(p.hex() + "\n" for c in (first, second) for p in c.pairs)
    path = tmp_path / "lmk.txt"
    done = billswitch("lmk", "generate", "--out", str(path), "--typed", stdin=typed)
    assert done.returncode == 0, done.stderr
    assert lmk.load_lmk_file(path) == lmk.combine_components([first, second])
    assert f"component 1: check value {lmk.lmk_check_value(first)}" in done.stdout
    for component in (first, second):
        assert component.pairs[3].hex().upper() not in done.stdout + done.stderr


def test_the_switch_and_keys_use_the_configured_lmk_file(tmp_path: Path) -> None:
    lmk_path = tmp_path / "lmk.txt"
    check = make_lmk(lmk_path)
    extra = f'[hsm]\nlmk = "{lmk_path}"\nlmk_check = "{check}"\n'
    url = f"sqlite:///{tmp_path / 'billswitch.db'}"
    with SwitchProcess.start(tmp_path, url, extra, ["--log-json"], demo=False) as proc:
        ready = [e for e in log_events(proc) if e["event"] == "HSM ready"]
        assert ready and ready[0]["lmk"] == check[:6]
        assert not warnings_of(proc, "TEST LMK")
    config = tmp_path / "billswitch.toml"
    engine = create_engine(url)
    with engine.begin() as conn:  # an owner for the key (no demo data here)
        conn.execute(
            text("insert into acquirers (id, name, status) values ('300003', 'B', 'active')")
        )
        conn.execute(
            text(
                "insert into terminals (acquirer_id, terminal_id, channel, status)"
                " values ('300003', 'ATM00009', 'ATM', 'active')"
            )
        )
    done = billswitch(
        "keys", "generate", "--owner", "300003:ATM00009", "--kind", "TAK",
        "--home", str(tmp_path), "--config", str(config),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"stored under LMK {check[:6]}" in done.stdout
    with engine.connect() as conn:
        value, stored_kcv = conn.execute(text("select value, kcv from keys")).one()
    engine.dispose()
    clear = lmk.decrypt_key(lmk.load_lmk_file(lmk_path), "003", value)
    assert kcv.kcv_des(clear)[:3].hex().upper() == stored_kcv  # under the file's LMK
    assert kcv.kcv_des(lmk.decrypt_key(lmk.TEST_LMK, "003", value))[:3].hex().upper() != stored_kcv


def test_a_bad_lmk_file_line_is_never_echoed(tmp_path: Path) -> None:
    billswitch("migrate", "--home", str(tmp_path))
    bad = tmp_path / "lmk.txt"
    bad.write_text("00-01 0101010101010101SECRETSECRET\n")
    config = tmp_path / "site.toml"
    config.write_text(f'[hsm]\nlmk = "{bad}"\n')
    done = billswitch(
        "keys", "generate", "--owner", "issuer", "--kind", "PVK",
        "--home", str(tmp_path), "--config", str(config),
    )  # fmt: skip
    assert done.returncode == 2
    assert "SECRET" not in done.stdout + done.stderr and "line 1" in done.stderr
    status, out = run_until_exit(tmp_path, f'[hsm]\nlmk = "{bad}"\n')
    assert status == 2 and "SECRET" not in out and "Traceback" not in out


def test_an_lmk_file_others_may_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "lmk.txt"
    make_lmk(path)
    path.chmod(0o644)
    status, out = run_until_exit(tmp_path / "home", f'[hsm]\nlmk = "{path}"\n')
    assert status == 2 and "readable by other users (mode 0644): chmod 600 it" in out


def test_demo_runs_the_test_lmk_and_warns_at_every_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'billswitch.db'}"
    for _ in range(2):
        with SwitchProcess.start(tmp_path, url, "", ["--log-json"]) as proc:
            assert len(warnings_of(proc, "TEST LMK")) == 1


def test_a_file_holding_the_test_lmk_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test-lmk.txt"
    path.write_text(lmk.lmk_text(lmk.TEST_LMK))
    status, out = run_until_exit(tmp_path / "home", f'[hsm]\nlmk = "{path}"\n')
    assert status == 2 and "public payShield test LMK" in out


def test_a_tcp_hsm_must_hold_the_expected_lmk(tmp_path: Path) -> None:
    lmk_path = tmp_path / "lmk.txt"
    check = make_lmk(lmk_path)
    with simulator(tmp_path, str(lmk_path)) as (port, _):
        hsm = f'[hsm]\nurl = "tcp://127.0.0.1:{port}"\n'
        status, out = run_until_exit(tmp_path / "a", hsm + 'lmk_check = "ABCDEF"\n')
        assert status == 2 and f"holds LMK {check}" in out and "expects ABCDEF" in out
        status, out = run_until_exit(tmp_path / "b", hsm)  # no expectation: none assumed
        assert status == 2 and f'lmk_check = "{check}"' in out
        url = f"sqlite:///{tmp_path / 'c.db'}"
        home = tmp_path / "c"
        home.mkdir()
        with SwitchProcess.start(home, url, hsm + f'lmk_check = "{check[:8]}"\n', demo=False):
            pass


def test_a_tcp_hsm_with_the_test_lmk_needs_allow_test_lmk(tmp_path: Path) -> None:
    with simulator(tmp_path, "test") as (port, _):
        hsm = f'[hsm]\nurl = "tcp://127.0.0.1:{port}"\n'
        status, out = run_until_exit(tmp_path / "a", hsm)
        assert status == 2 and "public payShield test LMK" in out
        home = tmp_path / "b"
        home.mkdir()
        url = f"sqlite:///{home / 'billswitch.db'}"
        config = hsm + "allow_test_lmk = true\n"
        with SwitchProcess.start(home, url, config, ["--log-json"], demo=False) as proc:
            assert len(warnings_of(proc, "TEST LMK")) == 1


# ---------------------------------------------------------------- item 2: key import


def _demo_home(home: Path, hsm: str = '[hsm]\nlmk = "test"\n') -> Path:
    """A database with the demo owners, and a configuration naming the HSM."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "site.toml"
    config.write_text(hsm)
    from switch.app import prepare_database
    from switch.cardholder import Hasher, load_or_create_key
    from switch.config import load

    settings = load(home=home)
    from dataclasses import replace

    prepare_database(
        replace(settings, demo_data=True), Hasher(load_or_create_key(home / "hash.key"))
    )
    return config


def _stored(home: Path, owner: str, kind: str) -> tuple[str, str]:
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    with engine.connect() as conn:
        row = conn.execute(
            text("select value, kcv from keys where owner = :o and key_type = :k"),
            {"o": owner, "k": kind},
        ).one()
    engine.dispose()
    return row[0], row[1]


def _xor_kcv(clears: list[bytes]) -> tuple[bytes, str]:
    xor = bytes(16)
    for c in clears:
        xor = bytes(a ^ b for a, b in zip(xor, c, strict=True))
    clear = des.fix_parity(xor)
    return clear, kcv.kcv_des(clear)[:3].hex().upper()


def test_import_shows_each_component_check_value_and_refuses_one(tmp_path: Path) -> None:
    config = _demo_home(tmp_path)
    args = ["keys", "import", "--owner", "100001:ATM00003", "--kind", "TMK"]
    args += ["--home", str(tmp_path), "--config", str(config)]
    one = billswitch(*args, "--components", "1", stdin=COMPONENTS[0] + "\n")
    assert one.returncode == 2 and "2 to 9" in one.stderr
    done = billswitch(*args, stdin="".join(c + "\n" for c in COMPONENTS))
    assert done.returncode == 0, done.stderr
    clears = [bytes.fromhex(c) for c in COMPONENTS]
    for n, clear in enumerate(clears, 1):
        assert f"component {n}: KCV {kcv.kcv_des(clear)[:3].hex().upper()}" in done.stdout
    _, expected = _xor_kcv(clears)
    assert f"stored under LMK {lmk.TEST_LMK_CHECK[:6]}, KCV {expected}" in done.stdout
    assert _stored(tmp_path, "100001:ATM00003", "TMK")[1] == expected
    for secret in COMPONENTS:
        assert secret not in done.stdout + done.stderr


def test_keys_go_through_a_tcp_hsm_and_components_are_formed_there(tmp_path: Path) -> None:
    lmk_path = tmp_path / "lmk.txt"
    check = make_lmk(lmk_path)
    lmk_set = lmk.load_lmk_file(lmk_path)
    with simulator(tmp_path, str(lmk_path)) as (port, _):
        hsm = f'[hsm]\nurl = "tcp://127.0.0.1:{port}"\nlmk_check = "{check}"\n'
        config = _demo_home(tmp_path / "home", hsm)
        home = ["--home", str(tmp_path / "home"), "--config", str(config)]
        done = billswitch("keys", "generate", "--owner", "100001:ATM00004", "--kind", "TAK", *home)
        assert done.returncode == 0, done.stderr
        assert f"stored under LMK {check[:6]}" in done.stdout
        value, stored_kcv = _stored(tmp_path / "home", "100001:ATM00004", "TAK")
        assert kcv.kcv_des(lmk.decrypt_key(lmk_set, "003", value))[:3].hex().upper() == stored_kcv
        clears = [bytes.fromhex(c) for c in COMPONENTS]
        under = [lmk.encrypt_key(lmk_set, "002", c, "U") for c in clears]  # from its console
        done = billswitch(
            "keys", "import", "--owner", "100001:ATM00004", "--kind", "TMK", *home,
            stdin="".join(u + "\n" for u in under),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        for n, clear in enumerate(clears, 1):
            assert f"component {n}: KCV {kcv.kcv_des(clear)[:3].hex().upper()}" in done.stdout
        clear, expected = _xor_kcv(clears)
        assert f"stored under LMK {check[:6]}, KCV {expected}" in done.stdout
        value, _ = _stored(tmp_path / "home", "100001:ATM00004", "TMK")
        assert lmk.decrypt_key(lmk_set, "002", value) == clear


# ---------------------------------------------------------------- item 3: files and dumps


def test_home_and_database_are_the_owners_only(tmp_path: Path) -> None:
    home = tmp_path / "new-home"
    assert billswitch("migrate", "--home", str(home)).returncode == 0
    assert mode(home) == 0o700 and mode(home / "billswitch.db") == 0o600
    config_home = tmp_path / "run"
    config_home.mkdir()
    home = config_home / "home"  # created by the switch
    url = f"sqlite:///{home / 'ledger.db'}"
    with SwitchProcess.start(config_home, url, "", ["--home", str(home)]) as proc:
        assert mode(home) == 0o700
        for name in ("ledger.db", "ledger.db-wal", "ledger.db-shm", "hash.key"):
            assert mode(home / name) == 0o600, name
        assert core_limit(proc.proc.pid) == "0"


def test_the_simulator_writes_no_core(tmp_path: Path) -> None:
    with simulator(tmp_path, "test") as (_, pid):
        assert core_limit(pid) == "0"


def test_forbid_core_dumps_makes_the_process_not_dumpable() -> None:
    probe = (
        "import ctypes\n"
        "from hsm_sim.core_dumps import forbid_core_dumps\n"
        "forbid_core_dumps()\n"
        "print(ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n"  # PR_GET_DUMPABLE
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=ENV, timeout=WAIT
    )
    assert done.stdout.strip() == "0", done.stderr


# ---------------------------------------------------------------- item 9: demo on demand


def _counts(url: str) -> tuple[int, int, int]:
    engine = create_engine(url)
    with engine.connect() as conn:
        counts = tuple(
            conn.execute(text(f"select count(*) from {table}")).scalar_one()
            for table in ("terminals", "keys", "cards")
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


def test_an_empty_database_gets_no_demo_unless_asked(tmp_path: Path, db_url: str) -> None:
    lmk_path = tmp_path / "lmk.txt"
    check = make_lmk(lmk_path)
    extra = f'[hsm]\nlmk = "{lmk_path}"\nlmk_check = "{check}"\n'
    with SwitchProcess.start(tmp_path, db_url, extra, ["--log-json"], demo=False) as proc:
        told = warnings_of(proc, "the database is empty")
        assert len(told) == 1 and "billswitch run --demo" in str(told[0]["event"])
        assert not warnings_of(proc, "DEMO MATERIAL")
    assert _counts(db_url) == (0, 0, 0)


def test_demo_on_demand_is_loaded_and_warned_of_once_per_start(tmp_path: Path, db_url: str) -> None:
    with SwitchProcess.start(tmp_path, db_url, "", ["--log-json"]) as proc:
        assert len(warnings_of(proc, "DEMO MATERIAL PRESENT")) == 1
    terminals, keys, cards = _counts(db_url)
    assert terminals == 11 and keys == 4 and cards == 1
    config = '[hsm]\nlmk = "test"\n'  # demo off (the default), its material still there
    with SwitchProcess.start(tmp_path, db_url, config, ["--log-json"], demo=False) as proc:
        warned = warnings_of(proc, "DEMO MATERIAL PRESENT")
        assert len(warned) == 1 and "PIN" in str(warned[0]["material"])
