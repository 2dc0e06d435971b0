"""The demo's online billers: the reference biller server inside the demo switch.

``billswitch run --demo`` (and so ``make run``) serves TEL01 and PWR01 on
127.0.0.1:8090 from this process, its store in the switch's home, so the demo
works with one command. ``demo_biller_sim = false`` leaves it out (to run
``billswitch biller-sim`` as its own process, e.g. to kill and restart it); so
does a port already taken, with a warning: the billers are then served by
whoever holds it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog
from twisted.internet.error import CannotListenError

from routing.biller_sim.faults import FaultBoard
from routing.biller_sim.server import listen, make_site, open_store

log = structlog.get_logger(__name__)

HOST, PORT = "127.0.0.1", 8090  # the demo billers' URLs (switch/demo.py) name it


class DemoBillers:
    """The running server: its port and store, closed by ``stop``."""

    def __init__(self, port: Any, store: Any) -> None:
        self._port, self._store = port, store

    def stop(self) -> Any:
        d = self._port.stopListening()
        d.addBoth(lambda _: self._store.close())
        return d


def start(reactor: Any, home: Path, port: int = PORT) -> DemoBillers | None:
    """The server on ``port``, or None (logged) if the port is taken."""
    store = open_store(str(home / "biller-sim.sqlite3"))
    try:
        listening = listen(reactor, make_site(reactor, store, FaultBoard()), HOST, port)
    except CannotListenError as exc:
        store.close()
        log.warning(
            "demo biller server not started: its port is taken (another one serving?)",
            port=port,
            error=str(exc.socketError),
        )
        return None
    log.info("demo biller server serving TEL01, PWR01", url=f"http://{HOST}:{port}")
    return DemoBillers(listening, store)
