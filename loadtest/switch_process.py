"""``bench``: start the switch itself in a child process, on free ports.

``make bench`` should measure the switch without the operator starting one
by hand or colliding with a switch already on 8583. The child gets its own
home folder and a config with port 0 everywhere, and reports the ports it
bound on its "billswitch: listening {...}" line. It stops with SIGTERM, which
makes the switch commit its queued ledger writes before exiting - needed
before the ledger check reads the database. (Not SIGINT: a child of a
background job inherits SIGINT as ignored, and would then be killed hard.)
"""

from __future__ import annotations

import ast
import signal
import subprocess
import sys
import time
from pathlib import Path

from loadtest.echo_process import PROJECT_ROOT, child_env

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
READY = "billswitch: listening "
CONFIG = """metrics_port = 0
log_level = "warning"
[channels.atm]
port = 0
mac = "none"
[channels.pos]
port = 0
mac = "none"
[channels.host]
port = 0
"""


class SwitchProcess:
    """A ``billswitch run`` child under ``home``; a context manager that always stops it."""

    def __init__(self, home: Path, db: str | None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        config = home / "bench.toml"
        config.write_text(CONFIG)
        self.log_path = home / "switch.log"
        command = [sys.executable, "-m", "switch.cli", "run", "--home", str(home)]
        command += ["--config", str(config)] + (["--db", db] if db else [])
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=PROJECT_ROOT
            )
        self.ports = self._wait_for_ports()

    def _wait_for_ports(self) -> dict[str, int]:
        """Poll the log for the ready line; give up (with the log's tail) if it never comes."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline and self._proc.poll() is None:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    return dict(ast.literal_eval(line[len(READY) :].split(" (")[0]))
            time.sleep(0.1)
        self.stop()
        tail = self.log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"the switch did not start:\n{tail}")

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> SwitchProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
