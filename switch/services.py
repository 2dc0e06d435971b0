"""What the pipeline's steps may use: the switch's services, bundled once at start."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time

from hsm_sim.interface import Hsm
from routing.routes import Router
from switch.cardholder import Hasher
from switch.intents import Intents
from switch.ledger.reads import Reads
from switch.ledger.reference import Reference
from switch.ledger.writer import LedgerWriter
from switch.security.cache import CardCache
from switch.security.keystore import KeyRing
from switch.security.tries import PinTries
from switch.sessions import SignOns


@dataclass
class Services:
    reference: Callable[[], Reference]
    sign_ons: SignOns
    reads: Reads
    writer: LedgerWriter
    router: Router
    hasher: Hasher
    cutover: time
    timezone: str
    hsm: Hsm
    keys: Callable[[], KeyRing]
    set_keys: Callable[[KeyRing], None]
    pins: PinTries  # PIN tries reserved in the pin_tries table, batched
    key_grace: float = 300.0
    issuer_bins: tuple[str, ...] = ()
    pin_tries: int = 3
    cards: CardCache = field(default_factory=CardCache)
    intents: Intents | None = None  # online payments' settle rows (switch/intents.py)
    ledger_deadline: float = 10.0  # seconds: no payment is posted later than this
