"""Several worker processes on one machine, sharing each channel's port.

One CPython process runs one thread of Python at a time, so a single switch
process tops out at about one core. With ``workers = N`` the ``billswitch
run`` process becomes a small supervisor: it migrates the database and loads
the demo data once, reserves each channel's port, starts N workers (each a
full node: its own reactor, ledger writer, read pool and HSM connections)
and restarts a worker that dies. Every worker listens on the same ports with
``SO_REUSEPORT``, so the kernel spreads new connections over them; a
connection stays with the worker that accepted it (sign-on, in-flight
requests). Everything the workers must agree on is in the database, exactly
as for several nodes (docs/architecture.md, "Several nodes").

A worker reports ready over a pipe with one JSON line of the ports it bound,
so the supervisor prints its ``listening`` line only when every worker
accepts connections.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from typing import IO, Any

import structlog
from twisted.internet.task import LoopingCall

from channels.listener import reuseport_socket

log = structlog.get_logger(__name__)

READY_TIMEOUT = 60.0  # seconds a worker may take to start (migrations are done already)
STOP_TIMEOUT = 60.0  # seconds a worker may take to drain its ledger queue on stop
RESTART_DELAY = 1.0  # seconds before a dead worker is started again


class WorkerStartError(Exception):
    """A worker exited or stayed silent before it was listening."""


def reserve_ports(channels: Sequence[tuple[str, str, int]]) -> dict[str, socket.socket]:
    """Bind (without listening) each ``(name, host, port)``; port 0 gets a free one.

    A bound socket that does not listen takes no connections, but it keeps the
    port for the workers, which bind it again with SO_REUSEPORT.
    """
    return {name: reuseport_socket(host, port, listen=False) for name, host, port in channels}


class Supervisor:
    """Starts, watches and stops the worker processes."""

    def __init__(self, argv: Sequence[str], count: int) -> None:
        self._argv = list(argv)
        self._count = count
        self._workers: dict[int, subprocess.Popen[bytes]] = {}
        self._stopping = False

    def start(self) -> list[dict[str, int]]:
        """Start every worker; returns each one's bound ports once all listen."""
        ports = []
        for index in range(self._count):
            self._workers[index], bound = self._spawn(index)
            ports.append(bound)
        return ports

    def run(self) -> int:
        """Watch until SIGTERM/SIGINT; restart workers that die; then stop them all."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        while not self._stopping:
            for index, proc in list(self._workers.items()):
                code = proc.poll()
                if code is not None and not self._stopping:
                    log.error("worker died; starting it again", worker=index, exit_code=code)
                    time.sleep(RESTART_DELAY)
                    self._respawn(index)
            time.sleep(0.2)
        return self.stop()

    def stop(self) -> int:
        """Ask every worker to stop (each drains its ledger queue) and wait for them."""
        self._stopping = True
        for proc in self._workers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        worst = 0
        deadline = time.monotonic() + STOP_TIMEOUT
        for index, proc in self._workers.items():
            try:
                code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time; killed", worker=index)
                proc.kill()
                code = proc.wait()
            worst = worst or (code if code and code > 0 else 0)
        return worst

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    def _respawn(self, index: int) -> None:
        try:
            self._workers[index], _ = self._spawn(index)
        except WorkerStartError as exc:
            log.error("worker restart failed", worker=index, error=str(exc))

    def _spawn(self, index: int) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
        read_fd, write_fd = os.pipe()
        argv = [*self._argv, "--worker", f"{index}:{write_fd}"]
        try:
            # A session of its own: Ctrl-C reaches only the supervisor, which stops each
            # worker once, with SIGTERM.
            proc = subprocess.Popen(argv, pass_fds=(write_fd,), start_new_session=True)
        finally:
            os.close(write_fd)
        with os.fdopen(read_fd, "rb") as ready:
            try:
                bound = _read_ready(ready, proc)
            except WorkerStartError:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                raise
        return proc, bound


def _read_ready(pipe: IO[bytes], proc: subprocess.Popen[bytes]) -> dict[str, int]:
    """The worker's ready line (its ports as JSON), or WorkerStartError."""
    readable, _, _ = select.select([pipe], [], [], READY_TIMEOUT)
    line = pipe.readline() if readable else b""
    if not line:
        code = proc.poll()
        raise WorkerStartError(
            f"worker exited with status {code}" if code is not None else "worker did not start"
        )
    return {str(k): int(v) for k, v in json.loads(line).items()}


def report_ready(fd: int, ports: dict[str, int]) -> None:
    """Worker side: tell the supervisor which ports this worker listens on."""
    with os.fdopen(fd, "w") as pipe:
        pipe.write(json.dumps(ports) + "\n")


def stop_when_orphaned(reactor: Any, interval: float = 1.0) -> LoopingCall:
    """Worker side: stop cleanly (draining the ledger) if the supervisor is gone."""
    parent = os.getppid()

    def check() -> None:
        if os.getppid() != parent and reactor.running:
            log.error("supervisor gone; stopping")
            reactor.stop()

    loop = LoopingCall(check)
    loop.clock = reactor
    loop.start(interval, now=False)
    return loop
