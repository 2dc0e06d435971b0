"""``bench --hsm-sim``: the payShield-protocol simulator in a child process.

The switch then talks to its HSM over TCP, as it would to a real payShield,
so the bench measures that path. The child binds a free port and reports it
on stderr ("hsm_sim: listening HOST:PORT ..."); its output goes to a log in
the bench's home, which we poll, so a full pipe can never stall it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from loadtest.echo_process import PROJECT_ROOT, child_env
from loadtest.switch_process import stop_process, wait_for_line

LISTENING = re.compile(r"^hsm_sim: listening (\S+):(\d+)\b")


class HsmSimProcess:
    """A running ``python -m hsm_sim --port 0``; a context manager that always stops it."""

    def __init__(self, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.log_path = home / "hsm_sim.log"
        command = [sys.executable, "-m", "hsm_sim", "--port", "0", "--lmk", "test"]
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=PROJECT_ROOT
            )
        self.url = self._wait_for_url()

    @property
    def pid(self) -> int:
        return self._proc.pid

    def _wait_for_url(self) -> str:
        line = wait_for_line(self._proc, self.log_path, lambda text: bool(LISTENING.match(text)))
        found = LISTENING.match(line or "")
        if found is None:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"hsm_sim did not start:\n{tail}")
        return f"tcp://{found.group(1)}:{found.group(2)}"

    def stop(self) -> None:
        stop_process(self._proc)

    def __enter__(self) -> HsmSimProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
