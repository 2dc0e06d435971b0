"""``bench``: start the switch itself in a child process, on free ports.

``make bench`` should measure the switch without the operator starting one
by hand or colliding with a switch already on 8583. The child gets its own
home folder and a config with port 0 everywhere, and reports the ports it
bound on its "billswitch: listening {...}" line. It stops with SIGTERM, which
makes the switch commit its queued ledger writes before exiting - needed
before the ledger check reads the database. (Not SIGINT: a child of a
background job inherits SIGINT as ignored, and would then be killed hard.)

With a MAC key the bench wants the ATM and POS channels to require X9.19
(``mac = "x919"``); an HSM URL goes to ``[hsm] url`` (default: the switch's
in-process software HSM).
"""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from loadtest.echo_process import PROJECT_ROOT, child_env

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
READY = "billswitch: listening "
CONFIG = """metrics_port = 0
log_level = "warning"
workers = {workers}
[channels.atm]
port = 0
mac = "{mac}"
[channels.pos]
port = 0
mac = "{mac}"
[channels.host]
port = 0
"""


def switch_config(
    mac: bool = False, hsm_url: str | None = None, workers: int = 1, top: str = ""
) -> str:
    """The bench's config: every port free, MAC required or not, which HSM, how many workers;
    ``top``: more top-level settings (the online billers', loadtest/online_billers.py)."""
    text = top + CONFIG.format(mac="x919" if mac else "none", workers=workers)
    return text + (f'[hsm]\nurl = "{hsm_url}"\n' if hsm_url else "")


class SwitchProcess:
    """A ``billswitch run`` child under ``home``; a context manager that always stops it."""

    def __init__(
        self,
        home: Path,
        db: str | None,
        mac: bool = False,
        hsm_url: str | None = None,
        workers: int = 1,
        top: str = "",
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        config = home / "bench.toml"
        config.write_text(switch_config(mac, hsm_url, workers, top))
        self.log_path = home / "switch.log"
        # --demo: the bench's terminals, keys and card are the demo's (under the test LMK).
        command = [sys.executable, "-m", "switch.cli", "run", "--demo", "--home", str(home)]
        command += ["--config", str(config)] + (["--db", db] if db else [])
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=PROJECT_ROOT
            )
        self.ports = self._wait_for_ports()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _wait_for_ports(self) -> dict[str, int]:
        """Poll the log for the ready line; give up (with the log's tail) if it never comes."""
        line = wait_for_line(self._proc, self.log_path, lambda text: text.startswith(READY))
        if line is None:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the switch did not start:\n{tail}")
        return dict(ast.literal_eval(line[len(READY) :].split(" (")[0]))

    def stop(self) -> None:
        stop_process(self._proc)

    def __enter__(self) -> SwitchProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM stops a child's reactor cleanly; kill it if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for_line(
    proc: subprocess.Popen[bytes], log: Path, wanted: Callable[[str], bool]
) -> str | None:
    """The first line of a child's log that is ``wanted``; None if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        for line in log.read_text(errors="replace").splitlines():
            if wanted(line):
                return line
        time.sleep(0.1)
    return None
