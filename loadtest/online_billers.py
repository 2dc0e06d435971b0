"""``bench --biller-sim``: the online demo billers served by a biller server of their own.

Measuring online payments with the reference biller inside the switch's process
(``demo_biller_sim``, the demo's default) would bill the server's CPU to the
switch and let the two share one reactor, which no deployment does. So the bench
starts ``python -m routing.biller_sim`` as a child (``BillerSimProcess``), tells
the switch not to serve the billers itself, and, once the switch has made its
demo data, points TEL01 and PWR01 at the child. The switch re-reads its billers
every ``reference_refresh`` seconds, so the bench waits that long (twice) before
loading it.
"""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, update

from loadtest.biller_process import BillerSimProcess

ONLINE = ("TEL01", "PWR01")  # the demo's online billers (switch/demo.py)
REFRESH_S = 1.0  # the bench switch's reference_refresh: a few reads a second, nothing at load
CONFIG = f"demo_biller_sim = false\nreference_refresh = {REFRESH_S}\n"


def start(home: Path) -> BillerSimProcess:
    """The biller server child on a free port, its store in ``home``."""
    return BillerSimProcess(home / "biller-sim")


def point_billers(db: str, sim: BillerSimProcess) -> None:
    """The online demo billers' URLs at ``sim``; returns once the switch can have seen them."""
    engine = create_engine(db)
    try:
        with engine.begin() as conn:
            from switch.ledger import schema as s

            for code in ONLINE:
                conn.execute(
                    update(s.billers).where(s.billers.c.code == code).values(url=sim.base(code))
                )
    finally:
        engine.dispose()
    time.sleep(2 * REFRESH_S)
