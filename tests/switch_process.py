"""Start ``billswitch run`` as a real process on ephemeral ports, for end-to-end tests."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, create_engine

from tests.client import IsoClient

CONFIG = """{top}
metrics_port = 0
demo_biller_sim = false  # tests start their own biller server on a free port
log_level = "info"
[channels.atm]
port = 0
mac = "none"
[channels.pos]
port = 0
mac = "none"
[channels.host]
port = 0
{extra}
"""


@dataclass
class SwitchProcess:
    proc: subprocess.Popen
    home: Path
    db_url: str
    ports: dict[str, int]
    log_path: Path

    @classmethod
    @contextmanager
    def start(
        cls,
        home: Path,
        db_url: str,
        extra_config: str = "",
        args: Sequence[str] = (),
        top_config: str = "",
        demo: bool = True,
    ) -> Iterator[SwitchProcess]:
        """``extra_config`` goes after the channel tables; ``top_config`` (top-level
        settings, which TOML allows only before any table) before them. ``demo``: start
        with ``--demo`` (demo data under the test LMK), as most tests need."""
        config = home / "billswitch.toml"
        config.write_text(CONFIG.format(extra=extra_config, top=top_config))
        log_path = home / "switch.log"
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "switch.cli",
                    "run",
                    "--home",
                    str(home),
                    "--config",
                    str(config),
                    "--db",
                    db_url,
                    *(["--demo"] if demo else []),
                    *args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            ports = _wait_for_ports(proc, log_path)
            yield cls(proc, home, db_url, ports, log_path)
        finally:
            _stop(proc)

    def client(self, channel: str = "atm", **kwargs: object) -> IsoClient:
        return IsoClient(self.ports[channel], **kwargs)  # type: ignore[arg-type]

    def engine(self) -> Engine:
        return create_engine(self.db_url)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def _wait_for_ports(proc: subprocess.Popen, log_path: Path) -> dict[str, int]:
    """Ports from the 'listening {...}' line; a bounded wait, with the log on failure."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("billswitch: listening "):
                return ast.literal_eval(line.split("listening ", 1)[1].split(" (")[0])
            if line.startswith("{") and '"event": "listening"' in line:  # --log-json
                return json.loads(line)["ports"]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    _stop(proc)
    raise RuntimeError("switch did not start:\n" + log_path.read_text(errors="replace")[-3000:])


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(
            signal.SIGTERM
        )  # SIGINT is ignored where the parent runs in the background
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
