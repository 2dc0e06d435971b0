"""The echo server in a child process, for ``compare`` and the tests.

On a two-core box the server and the generator must not share one Python
interpreter (one GIL, one core), or the baseline would measure the generator
fighting itself. The child binds port 0 and prints the port it got, which
avoids the race of picking a "free" port in the parent.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from loadtest.echo_server import LISTENING

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_S = 15.0


class EchoProcess:
    """A running echo server child; use as a context manager so it is always stopped."""

    def __init__(
        self, framing: str = "binary2", tpdu: bool = False, mac_key: bytes | None = None
    ) -> None:
        command = [sys.executable, "-m", "loadtest", "echo-server", "--port", "0"]
        command += ["--framing", framing] + (["--tpdu"] if tpdu else [])
        command += ["--mac-key", mac_key.hex().upper()] if mac_key else []
        self._proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, env=child_env(), cwd=PROJECT_ROOT
        )
        self.port = self._read_port()

    def _read_port(self) -> int:
        """Wait (bounded) for the child's "listening on host:port" line."""
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], START_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else ""
        if not line.startswith(LISTENING):
            self.stop()
            raise RuntimeError(f"echo server did not start: {line.strip() or 'no output'}")
        return int(line.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Terminate the child (SIGTERM stops its reactor), kill it if it lingers."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()

    def __enter__(self) -> EchoProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def child_env() -> dict[str, str]:
    """The child must import this very checkout, whatever the caller's cwd."""
    env = dict(os.environ)
    paths = [str(PROJECT_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
