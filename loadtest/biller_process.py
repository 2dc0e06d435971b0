"""The reference biller server (``python -m routing.biller_sim``) in a child process.

For the benchmarks and the tests: it binds the port asked for (0: a free one)
and reports it on stderr ("biller_sim: listening HOST:PORT ..."); its output
goes to a log in ``home`` that we poll, so a full pipe can never stall it.
``kill`` ends it with SIGKILL and ``start`` brings it back on the same store and
(once it has one) the same port, as a crashed biller would come back.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.echo_process import PROJECT_ROOT, child_env
from loadtest.switch_process import stop_process, wait_for_line

LISTENING = re.compile(r"^biller_sim: listening (\S+):(\d+)\b")


class BillerSimProcess:
    """A running biller server child; a context manager that always stops it."""

    def __init__(self, home: Path, port: int = 0, args: Sequence[str] = ()) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.data = home / "biller-sim.sqlite3"
        self.port = port
        self._args = list(args)
        self._starts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base(self, code: str) -> str:
        """One biller's base URL, as the switch's ``billers`` table holds it."""
        return f"{self.url}/{code}"

    def start(self) -> None:
        self._starts += 1
        self.log_path = self.home / f"biller_sim.{self._starts}.log"
        command = [sys.executable, "-m", "routing.biller_sim", "--port", str(self.port)]
        command += ["--data", str(self.data), *self._args]
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=PROJECT_ROOT
            )
        line = wait_for_line(self._proc, self.log_path, lambda text: bool(LISTENING.match(text)))
        found = LISTENING.match(line or "")
        if found is None:
            self.stop()
            tail = self.log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"biller_sim did not start:\n{tail}")
        self.port = int(found.group(2))

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as in a crash."""
        assert self._proc is not None
        self._proc.send_signal(signal.SIGKILL)
        self._proc.wait()

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)

    def control(self, code: str, faults: dict[str, Any] | None = None) -> dict[str, Any]:
        """Set a biller's faults (``{}`` clears them), or read them when ``faults`` is None."""
        body = None if faults is None else json.dumps(faults).encode()
        return self._control(f"/_control/{code}", body)

    def payments(self, code: str) -> list[dict[str, Any]]:
        """Every payment the biller holds (its truth, to compare with a ledger)."""
        return self._control(f"/_control/{code}/payments")["payments"]

    def account(self, code: str, account: str) -> dict[str, Any]:
        return self._control(f"/_control/{code}/accounts/{account}")

    def _control(self, path: str, body: bytes | None = None) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, data=body)
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def __enter__(self) -> BillerSimProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
