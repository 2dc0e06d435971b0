"""Several worker processes on one machine, sharing each channel's port.

One CPython process runs one thread of Python at a time, so a single switch
process tops out at about one core. With ``workers = N`` the ``billswitch
run`` process becomes a small supervisor: it migrates the database and loads
the demo data once, reserves each channel's port, starts N workers (each a
full node: its own reactor, ledger writer, read pool and HSM connections)
and restarts a worker that dies, backing off and finally giving up (exit 1)
if it keeps dying (``Supervisor``). Every worker listens on the same ports with
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
from dataclasses import dataclass
from typing import IO, Any

import structlog
from twisted.internet.task import LoopingCall

from channels.listener import reuseport_socket
from switch import systemd

log = structlog.get_logger(__name__)

READY_TIMEOUT = 60.0  # seconds a worker may take to start (migrations are done already)
STOP_TIMEOUT = 60.0  # seconds a worker may take to stop (answers in flight, ledger queue)
RESTART_DELAY = 1.0  # seconds before the first restart; doubled after each fast failure
RESTART_DELAY_MAX = 30.0  # the longest wait between restarts
STABLE_AFTER = 60.0  # seconds up after which a worker's failure is not "fast" (count restarts)
GIVE_UP_AFTER = 5  # fast failures in a row of one worker: stop every worker, exit 1
TICK = 0.2  # seconds between looks at the workers (and at a stop signal)


class WorkerStartError(Exception):
    """A worker exited or stayed silent before it was listening."""


def reserve_ports(channels: Sequence[tuple[str, str, int]]) -> dict[str, socket.socket]:
    """Bind (without listening) each ``(name, host, port)``; port 0 gets a free one.

    A bound socket that does not listen takes no connections, but it keeps the
    port for the workers, which bind it again with SO_REUSEPORT.
    """
    return {name: reuseport_socket(host, port, listen=False) for name, host, port in channels}


@dataclass
class _Worker:
    """One worker slot: its process, and its ready pipe while it starts."""

    index: int
    proc: subprocess.Popen[bytes] | None = None
    ready: IO[bytes] | None = None  # open until the worker reports its ports (or dies)
    ports: dict[str, int] | None = None
    spawned_at: float = 0.0
    failures: int = 0  # fast failures in a row
    restart_at: float | None = None


class Supervisor:
    """Starts, watches and stops the worker processes.

    One loop, never blocked for more than ``TICK``: it reads the ready pipes
    of starting workers, notices deaths and a stop signal, and restarts dead
    workers when their backoff has passed. A worker failing fast (dying, or
    not starting, within ``STABLE_AFTER`` of its start) waits twice as long
    as before to be started again (1, 2, 4 ... up to 30 s); at the
    ``GIVE_UP_AFTER``-th fast failure in a row the supervisor stops every
    worker and exits 1, so that systemd (or the operator) sees a switch that
    cannot run instead of a restart loop.
    """

    def __init__(self, argv: Sequence[str], count: int) -> None:
        self._argv = list(argv)
        self._workers = [_Worker(index) for index in range(count)]
        self._stopping = False
        self._gave_up = False

    def start(self) -> list[dict[str, int]] | None:
        """Start every worker at once; each one's bound ports once all listen.

        None if SIGTERM/SIGINT came first (call ``stop``); WorkerStartError if
        one exits or stays silent (a configuration that cannot run: no retries).
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        for worker in self._workers:
            self._spawn(worker)
        while not self._stopping:
            failed = self._poll()
            if failed:
                worker, why = failed[0]
                raise WorkerStartError(f"worker {worker.index} {why}")
            if all(w.ports is not None for w in self._workers):
                return [w.ports for w in self._workers if w.ports is not None]
        return None

    def run(self) -> int:
        """Watch until SIGTERM/SIGINT; restart workers that die; then stop them all."""
        while not self._stopping:
            for worker, why in self._poll():
                self._failed(worker, why)
            if self._gave_up:
                break
            self._restart_due()
        return self.stop()

    def stop(self) -> int:
        """Ask every worker to stop (each answers what it has in flight) and wait for them.

        The exit status: 1 if the supervisor gave up on a failing worker, else
        the first positive exit status of a worker, else 0.
        """
        self._stopping = True
        systemd.notify("STOPPING=1")
        for worker in self._workers:
            self._close_ready(worker)
            if worker.proc is not None and worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        worst = 0
        deadline = time.monotonic() + STOP_TIMEOUT
        for worker in self._workers:
            if worker.proc is None:
                continue
            try:
                code = worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time; killed", worker=worker.index)
                worker.proc.kill()
                code = worker.proc.wait()
            worst = worst or (code if code and code > 0 else 0)
        return 1 if self._gave_up else worst

    def _on_signal(self, signum: int, frame: Any) -> None:
        self._stopping = True

    # -- the loop ------------------------------------------------------------

    def _poll(self) -> list[tuple[_Worker, str]]:
        """Wait up to TICK for news; the workers that failed since, each with why."""
        starting = {w.ready: w for w in self._workers if w.ready is not None}
        if starting:
            readable, _, _ = select.select(list(starting), [], [], TICK)
        else:
            readable = []
            time.sleep(TICK)
        failed = []
        for pipe in readable:
            why = self._ready(starting[pipe])
            if why:
                failed.append((starting[pipe], why))
        now = time.monotonic()
        for worker in self._workers:
            if worker.proc is None or any(w is worker for w, _ in failed):
                continue
            if worker.ready is not None and now - worker.spawned_at > READY_TIMEOUT:
                failed.append((worker, f"did not start within {READY_TIMEOUT:.0f} s"))
            elif worker.ready is None and (code := worker.proc.poll()) is not None:
                failed.append((worker, f"exited with status {code}"))
        return failed

    def _ready(self, worker: _Worker) -> str | None:
        """Read a starting worker's ready line: None if it listens, else why not."""
        assert worker.ready is not None and worker.proc is not None
        line = worker.ready.readline()
        self._close_ready(worker)
        if not line:  # the pipe closed: the worker is exiting (reaped by _failed)
            code = worker.proc.poll()
            return "exited before it was listening" + (f" (status {code})" if code else "")
        worker.ports = {str(k): int(v) for k, v in json.loads(line).items()}
        if worker.failures:
            log.info("worker started again", worker=worker.index)
        return None

    def _failed(self, worker: _Worker, why: str) -> None:
        """Reap a failed worker; schedule its restart after its backoff, or give up."""
        self._reap(worker)
        now = time.monotonic()
        fast = now - worker.spawned_at < STABLE_AFTER
        worker.failures = worker.failures + 1 if fast else 1
        if worker.failures >= GIVE_UP_AFTER:
            log.error(
                "worker keeps failing; giving up: stopping every worker",
                worker=worker.index,
                failures=worker.failures,
                error=why,
            )
            self._gave_up = True
            return
        delay = min(RESTART_DELAY * 2 ** (worker.failures - 1), RESTART_DELAY_MAX)
        log.error(
            "worker died; starting it again",
            worker=worker.index,
            error=why,
            failures=worker.failures,
            delay=delay,
        )
        worker.restart_at = now + delay

    def _restart_due(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if worker.restart_at is not None and now >= worker.restart_at:
                worker.restart_at = None
                self._spawn(worker)

    # -- one worker ----------------------------------------------------------

    def _spawn(self, worker: _Worker) -> None:
        """Start the worker's process; it reports on its ready pipe (read by ``_poll``)."""
        read_fd, write_fd = os.pipe()
        argv = [*self._argv, "--worker", f"{worker.index}:{write_fd}"]
        try:
            # A session of its own: Ctrl-C reaches only the supervisor, which stops each
            # worker once, with SIGTERM.
            worker.proc = subprocess.Popen(argv, pass_fds=(write_fd,), start_new_session=True)
        except OSError:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        worker.ready = os.fdopen(read_fd, "rb")
        worker.ports = None
        worker.spawned_at = time.monotonic()

    def _reap(self, worker: _Worker) -> None:
        self._close_ready(worker)
        if worker.proc is not None:
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait()
        worker.proc = None

    @staticmethod
    def _close_ready(worker: _Worker) -> None:
        if worker.ready is not None:
            worker.ready.close()
            worker.ready = None


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
