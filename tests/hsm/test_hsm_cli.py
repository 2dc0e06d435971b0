"""``python -m hsm_sim`` as a process: it listens, answers, loads an LMK file, stops cleanly."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hsm_sim.__main__ import main
from hsm_sim.crypto import lmk
from tests.hsm.hsm_support import WAIT, exchange

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"hsm_sim: listening ([\d.]+):(\d+) ")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hsm_sim", *args]


def environment() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT))


@contextmanager
def simulator_process(*args: str) -> Iterator[int]:
    """The simulator on an ephemeral port; its port, read from its 'listening' line."""
    proc = subprocess.Popen(
        command("--port", "0", *(args or ("--lmk", "test"))),
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # the first line, or "" if it died first
        match = LISTENING.match(line)
        assert match, f"simulator did not start: {line!r}"
        yield int(match.group(2))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=WAIT) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


def test_hsm_cli_serves_on_an_ephemeral_port() -> None:
    with simulator_process() as port:
        answer = exchange(port, b"0001NC")
    assert answer[:24] == b"0001ND00" + lmk.lmk_check_value(lmk.TEST_LMK).encode()


def test_hsm_cli_loads_an_lmk_file(tmp_path: Path) -> None:
    pairs = list(lmk.TEST_LMK.pairs)
    pairs[0] = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")  # another LMK
    lines = [f"{2 * i:02d}-{2 * i + 1:02d} {p.hex().upper()}" for i, p in enumerate(pairs)]
    path = tmp_path / "lmk.txt"
    path.write_text("# a test LMK\n" + "\n".join(lines) + "\n")
    with simulator_process("--lmk", str(path)) as port:
        answer = exchange(port, b"0001NC")
    expected = lmk.lmk_check_value(lmk.LmkSet(tuple(pairs)))
    assert answer[8:24] == expected.encode() != lmk.lmk_check_value(lmk.TEST_LMK).encode()


def run_to_end(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args), capture_output=True, text=True, env=environment(), timeout=WAIT
    )


def test_hsm_cli_refuses_a_bad_lmk_file_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "lmk.txt"
    path.write_text("00-01 0101010101010101SECRETSECRET\n")
    done = run_to_end("--port", "0", "--lmk", str(path))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "SECRET" not in done.stderr


def test_hsm_cli_refuses_a_missing_lmk_file(tmp_path: Path) -> None:
    done = run_to_end("--port", "0", "--lmk", str(tmp_path / "none.txt"))
    assert (done.returncode, done.stderr.count("\n")) == (2, 1)


def test_hsm_cli_port_in_use_is_one_line() -> None:
    with simulator_process() as port:
        done = run_to_end("--port", str(port), "--lmk", "test")
    assert done.returncode == 2 and "cannot listen" in done.stderr
    assert done.stderr.count("\n") == 1


def test_hsm_cli_refuses_a_negative_header_length(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--header-length", "-1"]) == 2
    assert "--header-length" in capsys.readouterr().err
