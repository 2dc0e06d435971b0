"""Online billers under crashes (issue 11, "Done when"): a load of payments, reversals
and advices from several connections while the reference biller server, or the switch
itself, is killed with SIGKILL and brought back, on SQLite and PostgreSQL.

The acquirer keeps to its side of ISO 8583 after the crash: a payment it got no answer
for is reversed (0420), a reversal it got no 00 for is sent again as a 0420, an advice
without its 0230 is repeated (0221). Once the outbox has nothing pending, the biller's
store (its control API) and the ledger must agree with what the acquirer saw:

- every payment answered 00 and not reversed, and every advice, is at the biller once,
  accepted, with its amount; and the ledger's standing online payments are exactly
  those (biller ids and amounts);
- every other payment (68, 91, 05, 96, no answer, reversed) is reversed at the biller
  or absent there, and stands nowhere in the ledger;
- no outbox row is parked.

Waits poll for an outcome under a generous bound; nothing asserts how fast.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from e2e_support import (
    ONLINE_EXTRA,
    ONLINE_TOP,
    Ledger,
    backend_url,
    biller_payment_id,
    call,
    serve_billers_from,
    sign_on_all,
    started,
)
from sqlalchemy import func, select

from loadtest.biller_process import BillerSimProcess
from switch.ledger import schema as s
from tests.client import IsoClient, inquiry, payment, reversal
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

TEL, PWR = "TEL01", "PWR01"
WAIT = 180.0  # seconds: a bound on every wait, not a measure of speed
CONNECTIONS = 6
BEFORE_KILL = 120  # answered requests before the kill
HOLD = 0.4  # seconds a biller holds its answers just before a kill (its call limit is 1 s)
AFTER_RETURN = 30  # payments approved after the killed process is back, then stop


# -- the acquirer ------------------------------------------------------------------


@dataclass
class Sent:
    """One request and the answer code the acquirer saw (None: none came)."""

    request: dict[str, str]
    original: dict[str, str] | None = None  # a reversal's payment
    code: str | None = None


@dataclass
class Acquirer:
    """``connections`` threads, each with its own connection to the switch's ATM port
    (``port()``: it changes when the switch is started again), sending payments to TEL01
    and PWR01, a reversal after some approvals, and now and then an advice."""

    port: Callable[[], int]
    connections: int = CONNECTIONS
    sent: list[Sent] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)
    _errors: list[BaseException] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.connections):
            thread = threading.Thread(target=self._run, args=(n,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        assert not any(t.is_alive() for t in self._threads), "an acquirer thread hangs"
        if self._errors:
            raise self._errors[0]

    def answered(self) -> int:
        with self._lock:
            return sum(1 for x in self.sent if x.code is not None)

    def approved_payments(self) -> int:
        with self._lock:
            return sum(1 for x in self.sent if x.request["t"] == "0200" and x.code == "00")

    def _run(self, n: int) -> None:
        try:
            self._load(n)
        except BaseException as exc:  # seen by stop(), in the test's thread
            self._errors.append(exc)
            raise

    def _load(self, n: int) -> None:
        rng = random.Random(n)
        terminal = ("ATM00001", "ATM00002")[n % 2]
        client: IsoClient | None = None
        while not self._stop.is_set():
            if client is None:
                client = self._connect()
                if client is None:
                    time.sleep(0.1)
                    continue
            sent = self._send(client, _request(rng, terminal, n))
            if sent.code == "00" and sent.request["t"] == "0200" and rng.random() < 0.25:
                sent = self._send(client, reversal(sent.request), original=sent.request)
            if sent.code is None:  # the connection is in an unknown state: a new one
                client.close()
                client = None
            elif sent.code == "91":  # the biller is down: a person tries again a bit later
                time.sleep(0.05)
        if client is not None:
            client.close()

    def _connect(self) -> IsoClient | None:
        try:
            return IsoClient(self.port(), timeout=15)
        except OSError:
            return None

    def _send(
        self, client: IsoClient, request: dict[str, str], original: dict[str, str] | None = None
    ) -> Sent:
        sent = Sent(request, original)
        with self._lock:
            self.sent.append(sent)
        try:
            response = client.call(request)
        except OSError:  # reset, closed or timed out: no answer seen
            return sent
        assert response["11"] == request["11"], (request, response)
        sent.code = response["39"]
        return sent


def _request(rng: random.Random, terminal: str, n: int) -> dict[str, str]:
    """A payment to TEL01 (an account owing 2500, 100 at a time) or PWR01, or one time in
    ten an advice to PWR01 (which takes any amount: an advice there is never refused)."""
    if rng.random() < 0.1:
        meter = f"METER-{n}{rng.randrange(1000):03d}"
        return payment(meter, 700, biller=PWR, mti="0220", terminal=terminal)
    if rng.random() < 0.5:
        account = str(5550003 + rng.randrange(48))
        return payment(account, 100, biller=TEL, terminal=terminal)
    amount = rng.randrange(100, 5000)
    return payment(f"METER-{n}{rng.randrange(1000):03d}", amount, biller=PWR, terminal=terminal)


def finish_unanswered(acquirer: Acquirer, client: IsoClient) -> None:
    """What an acquirer does after the crash for what it never got an answer to (or a 00
    for, for a reversal): reverse the payment (0420), send the reversal again (0420),
    repeat the advice (0221). Each must now be answered 00."""
    for sent in list(acquirer.sent):
        mti = sent.request["t"]
        if mti == "0200" and sent.code is None:
            _reverse(acquirer, client, sent.request)
        elif mti in ("0400", "0420") and sent.code != "00":
            assert sent.original is not None
            _reverse(acquirer, client, sent.original)
        elif mti == "0220" and sent.code is None:
            call(client, dict(sent.request, t="0221"))
            sent.code = "00"


def _reverse(acquirer: Acquirer, client: IsoClient, original: dict[str, str]) -> None:
    request = reversal(original, mti="0420")
    call(client, request)
    acquirer.sent.append(Sent(request, original, "00"))


# -- what must hold ----------------------------------------------------------------


def expected(acquirer: Acquirer) -> tuple[dict[str, int], set[str]]:
    """``(standing, not standing)``: the biller ids of the payments and advices that must
    stand (with their amounts), and those that must not."""
    reversed_ = {biller_payment_id(x.original) for x in acquirer.sent if x.original is not None}
    standing: dict[str, int] = {}
    other: set[str] = set()
    for sent in acquirer.sent:
        request = sent.request
        if request["t"] not in ("0200", "0220"):
            continue
        pid = biller_payment_id(request)
        approved = sent.code == "00" or request["t"] == "0220"
        if approved and pid not in reversed_:
            standing[pid] = int(request["4"])
        else:
            other.add(pid)
    return standing, other


def at_biller(sim: BillerSimProcess) -> list[dict]:
    return [p for code in (TEL, PWR) for p in sim.payments(code)]


def accepted_at(sim: BillerSimProcess) -> dict[str, int]:
    """The biller's accepted payments: biller id -> amount."""
    return {h["payment_id"]: h["amount"] for h in at_biller(sim) if h["status"] == "accepted"}


def ledger_standing(ledger: Ledger) -> dict[str, int]:
    """The ledger's online payments not reversed: biller id -> amount."""
    p = s.payments.c
    query = select(p.biller_payment_id, p.amount, p.reversed_amount).where(
        p.biller_code.in_([TEL, PWR])
    )
    with ledger.engine.connect() as conn:
        rows = list(conn.execute(query))
    ids = Counter(r.biller_payment_id for r in rows)
    assert all(n == 1 for n in ids.values()), [i for i, n in ids.items() if n > 1]
    return {r.biller_payment_id: r.amount for r in rows if r.reversed_amount == 0}


def outbox_states(ledger: Ledger) -> dict[str, int]:
    o = s.outbox.c
    with ledger.engine.connect() as conn:
        return dict(conn.execute(select(o.state, func.count()).group_by(o.state)).all())  # type: ignore[arg-type]


def wait_until_delivered(ledger: Ledger) -> None:
    _until(lambda: outbox_states(ledger).get("pending", 0) == 0, "the outbox with nothing pending")


def assert_agreement(acquirer: Acquirer, sim: BillerSimProcess, ledger: Ledger) -> None:
    standing, other = expected(acquirer)
    held = at_biller(sim)
    counts = Counter(h["payment_id"] for h in held)
    assert [pid for pid, n in counts.items() if n > 1] == []
    by_id = {h["payment_id"]: h for h in held}
    accepted = {h["payment_id"]: h["amount"] for h in held if h["status"] == "accepted"}
    missing = {pid for pid in standing if by_id.get(pid, {}).get("status") != "accepted"}
    assert missing == set(), "approved and not reversed, but not accepted at the biller"
    wrongly_held = {pid for pid in other if by_id.get(pid, {}).get("status") == "accepted"}
    assert wrongly_held == set(), "not approved (or reversed), yet accepted at the biller"
    assert accepted == standing
    assert ledger_standing(ledger) == accepted
    assert outbox_states(ledger).get("parked", 0) == 0


def _until(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not done():
        assert time.monotonic() < deadline, f"never saw {what}"
        time.sleep(0.2)


# -- the stack ---------------------------------------------------------------------


@dataclass
class Stack:
    """A switch (started again after a kill), the biller server, the ledger."""

    home: Path
    url: str
    sim: BillerSimProcess
    switch: SwitchProcess
    ledger: Ledger
    exits: ExitStack

    def restart_switch(self) -> None:
        """Start the switch again on the same home and database (its log kept aside)."""
        self.switch.log_path.rename(self.home / f"switch.{time.monotonic_ns()}.log")
        self.switch = self.exits.enter_context(
            started(self.home, self.url, ONLINE_EXTRA, top_config=ONLINE_TOP)
        )
        _ready(self.switch)


def _ready(switch: SwitchProcess) -> None:
    sign_on_all(switch)
    with switch.client("atm") as atm:
        _until(lambda: atm.call(inquiry("5550001", biller=TEL)).get("39") == "00", "TEL01 up")


@pytest.fixture(params=BACKENDS)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    with BillerSimProcess(tmp_path / "biller") as sim:
        for url in backend_url(request.param, tmp_path):  # the database outlives the switch
            with ExitStack() as exits:
                switch = exits.enter_context(
                    started(tmp_path, url, ONLINE_EXTRA, top_config=ONLINE_TOP)
                )
                sign_on_all(switch)
                serve_billers_from(switch, sim, (TEL, PWR))
                ledger = Ledger(url)
                exits.callback(ledger.close)
                yield Stack(tmp_path, url, sim, switch, ledger, exits)


def _run_through(stack: Stack, kill: Callable[[], None], back: Callable[[], None]) -> Acquirer:
    """The load; ``kill`` once it is under way, ``back`` a moment later; more load until
    payments are approved again; then the acquirer's repairs and the outbox drained."""
    acquirer = Acquirer(port=lambda: stack.switch.ports["atm"])
    acquirer.start()
    try:
        _until(lambda: acquirer.answered() >= BEFORE_KILL, "the load under way")
        kill()
        time.sleep(1.0)
        back()
        approved = acquirer.approved_payments()
        again = approved + AFTER_RETURN
        _until(lambda: acquirer.approved_payments() >= again, "payments approved again")
    finally:
        acquirer.stop()
    wait_until_delivered(stack.ledger)  # by the switch alone, the ledger and biller agree
    assert ledger_standing(stack.ledger) == accepted_at(stack.sim)
    with stack.switch.client("atm") as atm:
        finish_unanswered(acquirer, atm)
    wait_until_delivered(stack.ledger)
    return acquirer


def _codes(acquirer: Acquirer) -> Counter[tuple[str, str | None]]:
    return Counter((x.request["t"], x.code) for x in acquirer.sent)


def _answers_held(sim: BillerSimProcess) -> None:
    """From now on the billers take payments and hold their answers back a while (less
    than the switch's call limit), so the kill that follows finds payments accepted at
    the biller whose answer the switch has not seen yet: the crash window that matters."""
    for code in (TEL, PWR):
        sim.control(code, {"hang": HOLD, "ops": ["pay"]})
    time.sleep(HOLD / 2)


def test_biller_killed_mid_load(stack: Stack) -> None:
    def kill() -> None:
        _answers_held(stack.sim)
        stack.sim.kill()  # a fresh start has no faults

    acquirer = _run_through(stack, kill, stack.sim.start)
    codes = _codes(acquirer)
    assert codes[("0200", "00")] >= AFTER_RETURN and codes[("0400", "00")] > 0, codes
    assert_agreement(acquirer, stack.sim, stack.ledger)


def test_switch_killed_mid_load(stack: Stack) -> None:
    def kill() -> None:
        _answers_held(stack.sim)
        stack.switch.proc.kill()
        stack.switch.proc.wait()

    def back() -> None:
        for code in (TEL, PWR):
            stack.sim.control(code, {})
        stack.restart_switch()

    acquirer = _run_through(stack, kill, back)
    codes = _codes(acquirer)
    assert codes[("0200", "00")] >= AFTER_RETURN and codes[("0400", "00")] > 0, codes
    assert_agreement(acquirer, stack.sim, stack.ledger)
