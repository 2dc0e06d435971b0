"""Wiring: database, ledger writer, read pool, pipeline, channels, metrics.

``SwitchApp.prepare`` runs before the reactor (the HSM and its LMK checked,
schema, demo data if asked, caches);
``start`` listens and starts the outbox's delivery loop; ``stop`` (a reactor
"before shutdown" trigger) stops the loop claiming, stops listening and taking
requests, answers every request in flight (the writer commits what is queued,
the HSM MACs the answers), closes the connections and lets deliveries under
way end (within ``stop_timeout``), then stops the writer, so Ctrl-C never leaves a
half-written transaction nor a committed one unanswered.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Connection
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread

from channels.listener import Channel
from hsm_sim.client import PayShieldClient
from routing.adapters.held import HeldDebtsAdapter
from routing.adapters.online import OnlineAdapter
from routing.adapters.outline import OutlineAdapter
from routing.routes import BillerAdapter, Router
from switch import close_of_day, demo, demo_billers, metrics
from switch.business_day import business_day, next_cutover, roll_over
from switch.cardholder import Hasher, load_or_create_key
from switch.config import Settings
from switch.custody import Custody, CustodyError, open_custody
from switch.delivery import DeliveryLoop
from switch.intents import Intents
from switch.ledger import queries
from switch.ledger.accounts import ensure_accounts
from switch.ledger.database import make_engine, migrate
from switch.ledger.reads import Reads
from switch.ledger.reference import Reference, Unseal, load_reference
from switch.ledger.retention import CHUNK, RETAINED, purge_chunk
from switch.ledger.writer import LedgerWriter
from switch.pipeline import Pipeline
from switch.private_files import make_home, private_database
from switch.sealing import Sealer, SealError, home_sealer
from switch.security.keystore import KeyRing, expire_grace, keys_version, load_keys
from switch.security.tries import PinTries
from switch.services import Services
from switch.sessions import SignOns
from switch.signing_key import load_or_create_signing_key

log = structlog.get_logger(__name__)


def prepare_database(settings: Settings, hasher: Hasher) -> None:
    """Migrate; load the demo data into an empty database if asked (once per machine: the
    supervisor of several workers does it for them); warn of demo material once per start."""
    make_home(settings.home)
    private_database(settings.db_url())
    engine = make_engine(settings.db_url(), timeouts=settings.database.for_maintenance())
    try:
        migrate(engine)
        with engine.begin() as conn:
            _load_demo(conn, settings, hasher)
    finally:
        engine.dispose()


DEMO_HOW = (
    "for the public demo data (test LMK, test keys, a card with PIN 1234) start with"
    " 'billswitch run --demo' (or demo_data = true and [hsm] lmk = \"test\")"
)


def _load_demo(conn: Connection, settings: Settings, hasher: Hasher) -> None:
    empty = demo.is_empty(conn)
    if settings.demo_data:
        if empty:
            demo.load_demo(conn)
            log.info("demo data loaded")
        if demo.needs_demo_keys(conn):
            demo.load_demo_keys(conn)
            log.info("demo keys loaded (test LMK, test-only)")
        added = demo.add_demo_billers(conn, home_sealer(settings.home).seal)
        if added:
            log.info("demo billers added", billers=", ".join(added))
        priced = demo.add_demo_fee_rules(conn)
        if priced:
            log.info("demo fee rules added", billers=", ".join(priced))
        payers = demo.add_demo_payer_codes(conn)
        if payers:
            log.info("demo payer codes added", codes=", ".join(payers))
        keyed = demo.add_demo_debt_keys(conn)
        if keyed:
            log.info("demo debt-file keys registered (test-only)", billers=", ".join(keyed))
        if demo.needs_demo_card(conn):
            demo.load_demo_card(conn, hasher.pan(demo.DEMO_CARD_PAN))
            log.info("demo on-us card loaded (test-only)")
    elif empty:
        log.warning("the database is empty: no terminals, keys or cards; " + DEMO_HOW)
    ensure_accounts(conn)
    present = demo.material_present(conn, hasher.pan(demo.DEMO_CARD_PAN))
    if (settings.home / "hash.key").exists():
        present += demo.published_secrets(conn, home_sealer(settings.home).open)
    if present:
        log.warning(
            "DEMO MATERIAL PRESENT: never in production: anyone can MAC, encrypt PINs"
            " and pay with it",
            material=", ".join(present),
        )


def check_demo(settings: Settings, custody: Custody) -> None:
    """Demo keys are stored under the test LMK: demo data under any other LMK is refused."""
    if settings.demo_data and not custody.is_test:
        raise CustodyError(
            f"demo_data needs the test LMK (the demo keys are stored under it), not {custody.name}"
        )


def _load_reference(conn: Connection, now: datetime, unseal: Unseal) -> Reference:
    """Fresh reference data; keys whose grace period is over are retired on the way
    (the key poll then sees the change and reloads the keys)."""
    expire_grace(conn, now)
    return load_reference(conn, unseal)


def unsealer(sealer: Sealer) -> Unseal:
    """Open billers' secrets for the reference snapshot; one that does not open leaves its
    biller without an endpoint, said in the log (never the secret)."""

    def unseal(code: str, sealed: str) -> bytes | None:
        try:
            return sealer.open(code, sealed)
        except SealError as exc:
            log.warning("biller secret unusable", biller=code, error=str(exc))
            return None

    return unseal


def _pin_hold(settings: Settings) -> float:
    """How long a card's reserved PIN tries count after its last reservation: longer than
    any try takes to be decided (the HSM's answer, then the ledger's deadline), so only
    reservations a stopped node or a lost answer left behind run out."""
    return settings.hsm.timeout + settings.ledger.deadline + 30.0


def _select_one(conn: Connection) -> object:
    return conn.exec_driver_sql("SELECT 1").scalar()


class SwitchApp:
    """One node. ``worker``: its index among the worker processes sharing the ports, if any."""

    def __init__(self, settings: Settings, reactor: Any, worker: int | None = None) -> None:
        self.settings = settings
        self.reactor = reactor
        self.worker = worker
        self.channels: list[Channel] = []
        self.ports: dict[str, int] = {}
        self._purge_stopping = False
        self._closing: Deferred[Any] | None = None  # the close-of-day job running, if any
        self._demo_billers: demo_billers.DemoBillers | None = None

    def prepare(self) -> None:
        s = self.settings
        custody = open_custody(s.hsm, self.reactor)  # before anything: refuse a wrong LMK
        check_demo(s, custody)
        make_home(s.home)
        self.lmk = custody.check_value[:6]
        log.info("HSM ready", hsm=s.hsm.url, lmk=self.lmk)
        if custody.warning():
            log.warning(custody.warning())
        home_key = load_or_create_key(s.home / "hash.key")
        # Made on the first start, so that billers can be given its public key before the
        # first cut-over; the close-of-day task reads it from the home when it signs.
        load_or_create_signing_key(s.home)
        hasher = Hasher(home_key)
        self._unseal = unsealer(Sealer(home_key))
        if self.worker is None:
            prepare_database(s, hasher)
        self.engine = make_engine(s.db_url(), timeouts=s.database)
        self.read_engine = make_engine(s.db_url(), write=False, timeouts=s.database)
        with self.read_engine.connect() as conn:
            self._reference = load_reference(conn, self._unseal)
            self._keys = load_keys(conn)
            self._keys_version = keys_version(conn)
        self.hsm = custody.hsm
        self.writer = LedgerWriter(
            self.engine,
            self.reactor.callFromThread,
            s.ledger.batch_max,
            s.ledger.queue_max,
            deadline=s.ledger.deadline,
            call_later=self.reactor.callLater,
            business_day=lambda now: business_day(now, s.cutover, s.timezone),
        )
        metrics.LEDGER_QUEUE.set_function(self.writer.depth)
        self.reads = Reads(
            self.read_engine,
            self.reactor,
            s.ledger.read_threads,
            s.ledger.read_queue_max,
            deadline=s.ledger.deadline,
        )
        # Online billers' endpoints come from the reference snapshot of the moment: a
        # changed URL or secret takes effect at the next refresh (the adapter's pool
        # for that biller is made afresh when its endpoint changes).
        self.online = OnlineAdapter(self.reactor, lambda code: self._reference.endpoint(code))
        held = HeldDebtsAdapter(
            lambda code, acc, period: self.reads.run(queries.bill, code, acc, period)
        )
        self.services = Services(
            reference=lambda: self._reference,
            sign_ons=SignOns(self.reads, s.sign_on_cache),
            reads=self.reads,
            writer=self.writer,
            router=Router({"held": held, "outline": OutlineAdapter(), "online": self.online}),
            hasher=hasher,
            cutover=s.cutover,
            timezone=s.timezone,
            hsm=self.hsm,
            keys=lambda: self._keys,
            set_keys=self.set_keys,
            pins=PinTries(
                self.reads.transaction,
                self.reactor.callLater,
                s.issuer.pin_tries,
                hold=_pin_hold(s),
            ),
            key_grace=s.hsm.key_grace,
            issuer_bins=s.issuer.bins,
            pin_tries=s.issuer.pin_tries,
            intents=Intents(self.reads.transaction),
            ledger_deadline=s.ledger.deadline,
        )
        self.pipeline = Pipeline(self.services)
        self.delivery = DeliveryLoop(
            self.reads.transaction, self.adapter_for, s.outbox, self.reactor
        )

    def adapter_for(self, biller_code: str) -> BillerAdapter:
        """The adapter serving ``biller_code`` now (the outbox's deliveries); a biller not
        (yet) in the reference data raises, and its rows are tried again later."""
        biller = self._reference.biller(biller_code)
        if biller is None:
            raise LookupError(f"biller {biller_code} is not in the reference data")
        return self.services.router.adapter(biller.kind)

    def start(self) -> None:
        s = self.settings
        self.writer.start()
        self.reads.start()
        self._roll_business_day()
        self._refresh = LoopingCall(self.reload_reference)
        self._refresh.clock = self.reactor
        self._refresh.start(self.settings.reference_refresh, now=False)
        self._key_watch = LoopingCall(self.check_keys)
        self._key_watch.clock = self.reactor
        self._key_watch.start(self.settings.hsm.key_refresh, now=False)
        self._purge = LoopingCall(self.purge_expired)
        self._purge.clock = self.reactor
        self._purge.start(self.settings.ledger.purge_every, now=True)
        self.delivery.start()
        if s.demo_data and s.demo_biller_sim and self.worker in (None, 0):
            self._demo_billers = demo_billers.start(self.reactor, s.home)
        for cs in self.settings.channels:
            if cs.enabled:
                channel = Channel(self.reactor, cs, self.pipeline)
                self.ports[cs.name] = channel.start(shared=self.worker is not None)
                self.channels.append(channel)
        self._start_metrics()

    def abort(self) -> None:
        """Undo a start that failed half-way (a port in use, a bad setting), before the
        reactor runs: every port and thread is released, so the process can exit."""
        for channel in self.channels:
            channel.stop_listening()
        if self._demo_billers is not None:
            self._demo_billers.stop()
        if hasattr(self, "delivery"):
            self.delivery.stop(0)  # nothing claimed yet: only its timers
        for part in ("writer", "reads"):
            if hasattr(self, part):
                getattr(self, part).stop()
        for engine in ("engine", "read_engine"):
            if hasattr(self, engine):
                getattr(self, engine).dispose()

    def reload_reference(self) -> Deferred[Reference | None]:
        """Re-read acquirers, terminals and billers (after an operator change)."""
        d = self.reads.transaction(_load_reference, datetime.now(UTC), self._unseal)
        d.addCallback(self._set_reference)
        d.addErrback(self._refresh_failed)
        return d

    def purge_expired(self) -> Deferred[None]:
        """Delete identity rows and done outbox rows past their retention, chunk by chunk
        on the read pool (``switch/ledger/retention.py``); a failure is logged and tried
        again next time."""
        days = self.settings.ledger.request_retention_days
        d = self._purge_all(datetime.now(UTC) - timedelta(days=days))
        d.addErrback(lambda f: log.warning("purge of expired requests failed", error=str(f.value)))
        return d

    @inlineCallbacks
    def _purge_all(self, before: datetime):  # type: ignore[no-untyped-def]
        total = 0
        for retained in RETAINED:
            while True:
                deleted = yield self.reads.transaction(purge_chunk, retained, before)
                total += deleted
                if deleted < CHUNK or self._purge_stopping:
                    break
        if total:
            log.info("expired requests purged", rows=total, before=before.isoformat())

    def check_keys(self) -> Deferred[None]:
        """Reload the keys if another node or worker changed them (a cheap poll)."""
        d = self.reads.run(keys_version)
        d.addCallback(self._keys_checked)
        d.addErrback(self._refresh_failed)
        return d

    def _keys_checked(self, version: tuple[int, int]) -> Deferred[None] | None:
        if version == self._keys_version:
            return None
        self._keys_version = version
        d = self.reads.run(load_keys)
        d.addCallback(self.set_keys)
        return d

    def set_keys(self, keys: KeyRing) -> None:
        """Replace the key snapshot (after a key change on this node)."""
        self._keys = keys

    def _refresh_failed(self, failure: Any) -> None:
        """Keep serving from the cached reference data and keys; try again next time."""
        log.warning("refresh of cached data failed", error=failure.getErrorMessage())

    def _set_reference(self, reference: Reference) -> Reference:
        self._reference = reference
        return reference

    def _roll_business_day(self) -> None:
        """Open the current business day, close earlier ones, settle the closed days not
        settled yet (switch/close_of_day.py), and do it again at cut-over."""
        s = self.settings
        now = datetime.now(UTC)
        today = business_day(now, s.cutover, s.timezone)
        d = deferToThread(self._roll_in_db, today, now)
        d.addCallback(lambda closed: closed and log.info("business days closed", days=closed))
        d.addErrback(lambda f: log.error("business day roll-over failed", error=str(f.value)))
        d.addCallback(lambda _: self._close_days())
        delay = (next_cutover(now, s.cutover, s.timezone) - now).total_seconds()
        self._cutover_call = self.reactor.callLater(delay + 0.001, self._roll_business_day)

    def _close_days(self) -> None:
        """The close-of-day job in a thread, one at a time on this node (another node's
        or worker's run of the same day is kept out by the day's claim)."""
        if self._closing is not None or self._purge_stopping:
            return
        self._closing = deferToThread(
            close_of_day.close_missed,
            self.engine,
            self.settings.home,
            node=close_of_day.node_name(self.worker),
            stopping=lambda: self._purge_stopping,
        )
        self._closing.addErrback(lambda f: log.error("close of day failed", error=str(f.value)))
        self._closing.addBoth(self._closed_days)

    def _closed_days(self, _: object) -> None:
        self._closing = None

    def _roll_in_db(self, today: date, now: datetime) -> list[date]:
        with self.engine.begin() as conn:
            return roll_over(conn, today, now)

    def _start_metrics(self) -> None:
        if not self.settings.metrics_port:
            return
        from prometheus_client.twisted import MetricsResource
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from switch import health

        root = Resource()
        root.putChild(b"metrics", MetricsResource())
        root.putChild(b"healthz", health.Healthz())
        probe = health.Probe(
            database=lambda: self.reads.run(_select_one),
            hsm=self.hsm.diagnostics,
            queue_depth=self.writer.depth,
            queue_max=self.settings.ledger.queue_max,
        )
        root.putChild(b"readyz", health.Readyz(probe, self.reactor))
        number = self.settings.metrics_port + (self.worker or 0)
        port = self.reactor.listenTCP(number, Site(root), interface="127.0.0.1")
        self.ports["metrics"] = port.getHost().port

    @inlineCallbacks
    def stop(self):  # type: ignore[no-untyped-def]
        log.info("stopping: no new connections or requests, answering those in flight")
        self._purge_stopping = True
        for loop in (self._refresh, self._key_watch, self._purge):
            if loop.running:
                loop.stop()
        if self._cutover_call.active():
            self._cutover_call.cancel()
        timeout = self.settings.stop_timeout
        # No more outbox claims; deliveries under way end meanwhile (or, past the timeout,
        # are delivered again after their lease by whichever node claims them).
        delivered = self.delivery.stop(timeout)
        yield DeferredList([c.stop_listening() for c in self.channels])
        # Answer every request in flight (its commit, then its MAC from the HSM) before
        # closing; only then is the writer stopped (nothing is left to queue).
        yield DeferredList([c.drain(timeout) for c in self.channels])
        yield delivered
        yield self.online.close()  # the billers' idle connections
        if self._demo_billers is not None:
            yield self._demo_billers.stop()
        yield deferToThread(self.writer.stop)
        if self._closing is not None:  # it stops between days and tasks
            yield self._closing
        self.reads.stop()
        self.engine.dispose()
        if isinstance(self.hsm, PayShieldClient):
            yield self.hsm.close()
        log.info("stopped")
