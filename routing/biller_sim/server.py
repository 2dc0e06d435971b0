"""The server's parts put together: the site, its store thread, and the port it listens on."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Request, Site

from routing.biller_sim.catalogue import BILLERS, DEMO_ACCOUNTS, Biller
from routing.biller_sim.faults import FaultBoard
from routing.biller_sim.resource import BillerSim
from routing.biller_sim.store import Store


class SimRequest(Request):
    """A request that can be left unread: ``stop_reading`` acts once its headers are in."""

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
    """The one thread that touches the store: requests queue for it, none blocks the reactor."""

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="biller-sim-store")
        self._pool.start()
        reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)

    def __call__(self, function: Any, *args: Any) -> Deferred[Any]:
        return deferToThreadPool(self._reactor, self._pool, function, *args)


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
    site = SimSite(BillerSim(reactor, billers, store, StoreThread(reactor), board))
    site.noisy = False
    return site


def listen(reactor: Any, site: SimSite, host: str, port: int) -> Any:
    return reactor.listenTCP(port, site, interface=host)
