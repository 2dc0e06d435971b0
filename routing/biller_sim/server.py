"""The server's parts put together: the site, its store thread, and the port it listens on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Request, Site

from routing.biller_sim.catalogue import BILLERS, DEMO_ACCOUNTS, Biller
from routing.biller_sim.faults import FaultBoard
from routing.biller_sim.resource import BillerSim
from routing.biller_sim.store import Store


class SimRequest(Request):
    """A request that can be left unread: ``stop_reading`` acts once its headers are in."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # JSON bodies only: twisted's look for HTML form fields parses every Content-Type
        # with the email package, about a tenth of a payment's cost here.
        super().__init__(*args, parsePOSTFormSubmission=False, **kwargs)

    def gotLength(self, length: int | None) -> None:
        super().gotLength(length)
        channel = self.channel
        # The method and target of the request whose headers just ended (its body has
        # not been read yet, so twisted has not made them attributes of ours).
        resource = channel.site.resource
        code = resource.stalls(channel._command, channel._path)
        if code is not None:
            resource.holds.stall(code, channel)


class SimSite(Site):
    requestFactory = SimRequest
    displayTracebacks = False

    def log(self, request: Any) -> None:
        """No access log: it would cost more than the answer at a thousand a second."""


class StoreThread:
    """The one thread that touches the store, so none of its work blocks the reactor.

    Calls queue up; each turn of the thread takes every call queued so far and
    hands all their results back at once. Under load that is one thread wake-up
    and one reactor wake-up for many requests instead of two each, which is
    where a thread per call spent its time (handing the GIL to and fro), and one
    commit for the whole turn (``Store.batch``).
    """

    def __init__(self, reactor: Any, batch: Callable[[], AbstractContextManager[Any]]) -> None:
        self._reactor = reactor
        self._batch = batch
        self._lock = threading.Lock()
        self._queue: list[tuple[Callable[..., Any], tuple[Any, ...], Deferred[Any]]] = []
        self._running = False
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="biller-sim-store")
        # Started with the reactor: a server that cannot listen must not be kept alive
        # by its thread. Calls made before then wait in the pool's queue.
        reactor.callWhenRunning(self._pool.start)
        reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def __call__(self, function: Callable[..., Any], *args: Any) -> Deferred[Any]:
        done: Deferred[Any] = Deferred()
        with self._lock:
            self._queue.append((function, args, done))
            start, self._running = not self._running, True
        if start:
            self._pool.callInThread(self._drain)
        return done

    def _drain(self) -> None:
        """In the store thread: run queued calls until none is left."""
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._running = False
                    return
            try:
                with self._batch():  # one commit for the whole turn, before any answer
                    results = [(done, _outcome(function, args)) for function, args, done in batch]
            except Exception:  # the commit failed: no answer may say it succeeded
                failed = Failure()
                results = [(done, failed) for _, _, done in batch]
            self._reactor.callFromThread(_deliver, results)


def _outcome(function: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    try:
        return function(*args)
    except Exception:
        return Failure()


def _deliver(results: list[tuple[Deferred[Any], Any]]) -> None:
    for done, outcome in results:
        done.callback(outcome)  # a Failure errbacks


def open_store(
    path: str, synchronous: str = "normal", billers: dict[str, Biller] = BILLERS
) -> Store:
    """The store with the demo accounts added where missing (never changing one that is there)."""
    store = Store(path, synchronous)
    for code, biller in billers.items():
        store.seed(biller, DEMO_ACCOUNTS.get(code, ()))
    return store


def make_site(
    reactor: Any, store: Store, board: FaultBoard, billers: dict[str, Biller] = BILLERS
) -> SimSite:
    site = SimSite(BillerSim(reactor, billers, store, StoreThread(reactor, store.batch), board))
    site.noisy = False
    return site


def listen(reactor: Any, site: SimSite, host: str, port: int) -> Any:
    return reactor.listenTCP(port, site, interface=host)


def serve(
    reactor: Any, data: str, host: str = "127.0.0.1", port: int = 8090, synchronous: str = "normal"
) -> tuple[Any, Store, FaultBoard]:
    """The whole server on ``reactor`` (e.g. inside the demo switch's process): its
    listening port, its store (close it after the reactor stops) and its faults."""
    store = open_store(data, synchronous)
    board = FaultBoard()
    return listen(reactor, make_site(reactor, store, board), host, port), store, board
