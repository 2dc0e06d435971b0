"""Helpers of the end-to-end suite: the ledger seen through SQL, and wire checks.

Named ``e2e_support`` (not ``helpers``) so its basename cannot clash with
another test folder's module.
"""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from datetime import time as clock_time
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import String, Text, create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

from iso.dialect import response_mti
from loadtest.biller_process import BillerSimProcess
from switch.business_day import business_day
from switch.ledger import schema as s
from switch.ledger.queries import unbalanced_journal_rows
from tests.client import IsoClient, bill_data, inquiry, sign_on
from tests.conftest import backend_url, postgres_schema_url  # noqa: F401 (re-exported)
from tests.ledger.ledger_support import assert_invariants
from tests.switch_process import SwitchProcess

BILLER = "UTIL01"
CURRENCY = "944"
FIRST_FREE_DEMO_ACCOUNT = 1000003  # demo accounts 1000003..1000100 owe nothing
LAST_DEMO_ACCOUNT = 1000100
TEST_PAN = "4761739001010119"  # a Visa test card number

# Terminals the switch fixture signs on; others of the demo data stay signed off.
SIGNED_ON = [("ATM00001", "100001"), ("ATM00002", "100001"), ("POS00001", "100001"),
             ("POS00002", "100001"), ("", "200002")]  # fmt: skip


@contextmanager
def sigint_inheritable() -> Iterator[None]:
    """Let processes started meanwhile receive Ctrl-C (SIGINT).

    A shell starts background jobs with SIGINT ignored and children inherit
    that; Twisted then installs no SIGINT handler, and Ctrl-C (which the
    fixtures use to stop the switch) would do nothing. A Python handler here
    is reset to the default in a child, so one is set meanwhile.
    """
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def started(
    home: Path, url: str, extra_config: str = "", args: Sequence[str] = (), top_config: str = ""
) -> Iterator[SwitchProcess]:
    """``SwitchProcess.start``, with Ctrl-C deliverable to the switch.

    When the tests using the switch are done (a module, for the ``switch``
    fixture) and none of them raised through here, the whole ledger must hold
    the invariants of design.md (``Ledger.check_invariants``): whatever the
    tests did on the wire cannot have left money half moved.
    """
    with ExitStack() as stack:
        with sigint_inheritable():
            proc = stack.enter_context(
                SwitchProcess.start(home, url, extra_config, args, top_config)
            )
        yield proc
        ledger = Ledger(url)
        try:
            ledger.check_invariants()
        except AssertionError as exc:  # pytest may report it at the next test's set-up
            backend = make_url(url).get_backend_name()
            message = f"ledger invariant broken by the tests on {backend}: {exc}"
            raise AssertionError(message) from exc
        finally:
            ledger.close()


Nodes = tuple[SwitchProcess, SwitchProcess, "Ledger"]


@contextmanager
def two_nodes(home: Path, backend: str, top_a: str = "", top_b: str = "") -> Iterator[Nodes]:
    """Two switch nodes (``top_a``/``top_b``: their top-level settings) on one fresh
    database, sharing the hashing key, every demo terminal signed on through each; and
    that database through SQL."""
    (home / "a").mkdir()
    (home / "b").mkdir()
    for url in backend_url(backend, home):
        with started(home / "a", url, top_config=top_a) as a:
            shutil.copy(home / "a" / "hash.key", home / "b" / "hash.key")
            with started(home / "b", url, top_config=top_b) as b:
                sign_on_all(a)
                sign_on_all(b)
                ledger = Ledger(url)
                try:
                    yield a, b, ledger
                finally:
                    ledger.close()


def sign_on_all(proc: SwitchProcess) -> None:
    for terminal, acquirer in SIGNED_ON:
        channel = "host" if not terminal else terminal[:3].lower()
        with proc.client(channel) as client:
            sign_on(client, terminal, acquirer)


# -- a day of traffic, then settled ---------------------------------------------

BEHIND, AHEAD = "Etc/GMT+12", "Etc/GMT-14"  # POSIX signs: UTC-12 and UTC+14
CUT = clock_time(23, 0)
T = TypeVar("T")


@dataclass
class Counted:
    """Totals as one side should have them: payments (count, amount), reversals, and the
    fees it is charged (an acquirer: the payer's fees; a biller: its own), less those a
    full reversal gave back."""

    count: int = 0
    amount: int = 0
    reversals: int = 0
    reversed_amount: int = 0
    fees: int = 0

    def paid(self, amount: int, fee: int = 0) -> None:
        self.count += 1
        self.amount += amount
        self.fees += fee

    def reversed(self, amount: int, fee_back: int = 0) -> None:
        self.reversals += 1
        self.reversed_amount += amount
        self.fees -= fee_back


@contextmanager
def settled_day(
    home: Path, url: str, traffic: Callable[[SwitchProcess], T], top_config: str = ""
) -> Iterator[tuple[SwitchProcess, date, T]]:
    """A business day of ``traffic`` on a switch whose day lags (UTC-12; ``top_config``:
    more top-level settings for that run), then the switch started again in UTC+14, a
    later business day: its start closes the traffic's day, finds it not settled (a
    missed day) and settles it. Yields that second switch (terminals signed on, the
    day's settlement report written), the day, and what ``traffic`` returned."""
    with started(home, url, top_config=f'timezone = "{BEHIND}"\n{top_config}') as proc:
        sign_on_all(proc)
        day = business_day(datetime.now(UTC), CUT, BEHIND)
        counted = traffic(proc)
    with started(home, url, top_config=f'timezone = "{AHEAD}"') as proc:
        sign_on_all(proc)
        wait_for_report(proc, day)
        yield proc, day, counted


def report_paths(proc: SwitchProcess, day: date) -> tuple[Path, Path]:
    """The settlement report of ``day``: (CSV, JSON)."""
    folder = proc.home / "settlement"
    return folder / f"{day}.csv", folder / f"{day}.json"


def wait_for_report(proc: SwitchProcess, day: date) -> None:
    """The start settles the missed day in a thread; its report is written last."""
    deadline = time.monotonic() + 90
    while not all(p.exists() for p in report_paths(proc, day)):
        assert proc.proc.poll() is None, proc.log_text()[-3000:]
        assert time.monotonic() < deadline, "no settlement report:\n" + proc.log_text()[-3000:]
        time.sleep(0.1)


def read_report(proc: SwitchProcess, day: date) -> dict:  # type: ignore[type-arg]
    return json.loads(report_paths(proc, day)[1].read_text())


# Online billers' tests: billers' URLs (set by ``serve_billers_from``) seen quickly, a
# short ledger deadline and a lively delivery loop: a settle row is due (call limit or
# deadline, whichever is longer) + 5 s after its payment, and delivered soon after.
ONLINE_TOP = "reference_refresh = 0.3  # seconds: the billers' URLs set below are seen quickly\n"
ONLINE_EXTRA = """
[ledger]
deadline = 3
[outbox]
poll = 0.2
backoff_base = 0.2
backoff_cap = 1
lease = 10
"""


@contextmanager
def online_stack(
    home: Path, backend: str, codes: Sequence[str]
) -> Iterator[tuple[SwitchProcess, BillerSimProcess]]:
    """A reference biller server and a switch (``ONLINE_EXTRA``) calling it for ``codes``,
    terminals signed on, on ``backend``."""
    with BillerSimProcess(home / "biller") as sim:
        for url in backend_url(backend, home):
            with started(home, url, ONLINE_EXTRA, top_config=ONLINE_TOP) as proc:
                sign_on_all(proc)
                serve_billers_from(proc, sim, codes)
                yield proc, sim


def serve_billers_from(
    proc: SwitchProcess, sim: BillerSimProcess, codes: Sequence[str] = ("TEL01", "PWR01")
) -> None:
    """Point the switch's online billers ``codes`` at ``sim`` (1 s call limit), and wait
    until the switch calls there (terminals signed on first: the check is an inquiry).

    The switch sees the change at its next reference refresh; until then it calls the
    demo's default URL (port 8090), where another biller server with the same demo data
    may answer on a shared machine. So the wait is for an answer only ``sim`` gives: an
    unknown account (14) for a known one, a fault set for the wait and then cleared.
    """
    engine = proc.engine()
    with engine.begin() as conn:
        for code in codes:
            conn.execute(
                update(s.billers)
                .where(s.billers.c.code == code)
                .values(url=sim.base(code), timeout_ms=1000)
            )
    engine.dispose()
    deadline = time.monotonic() + 90
    with proc.client("atm") as atm:
        for code in codes:
            sim.control(code, {"decline": "unknown_account", "ops": ["fetch"]})
            try:
                while atm.call(inquiry("5550001", biller=code)).get("39") != "14":
                    assert time.monotonic() < deadline, f"the switch never called {sim.url}"
                    time.sleep(0.1)
            finally:
                sim.control(code, {})


class Ledger:
    """The switch's database as the tests see it: seed debts, read what was recorded."""

    def __init__(self, url: str) -> None:
        args = {"timeout": 30} if url.startswith("sqlite") else {"connect_timeout": 5}
        self.engine = create_engine(url, connect_args=args)
        self._numbers = itertools.count(FIRST_FREE_DEMO_ACCOUNT)

    def close(self) -> None:
        self.engine.dispose()

    # -- seeding -----------------------------------------------------------

    def account(self, *debts: int, name: str = "Test Payer") -> str:
        """An account of UTIL01 no other test uses, owing ``debts`` (oldest first)."""
        number = next(self._numbers)
        account = str(number)
        with self.engine.begin() as conn:
            if number > LAST_DEMO_ACCOUNT:
                conn.execute(
                    insert(s.customers).values(biller_code=BILLER, account=account, name=name)
                )
            if debts:
                conn.execute(
                    insert(s.debts),
                    [
                        {
                            "biller_code": BILLER,
                            "account": account,
                            "period": f"2026{i + 1:02d}",
                            "invoice": f"INV{number}{i}",
                            "amount_original": amount,
                            "amount_open": amount,
                        }
                        for i, amount in enumerate(debts)
                    ],
                )
        return account

    # -- reading -----------------------------------------------------------

    def due(self, account: str) -> int:
        d = s.debts.c
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.coalesce(func.sum(d.amount_open), 0)).where(
                    d.biller_code == BILLER, d.account == account
                )
            ).scalar_one()

    def payments(self, account: str | None = None) -> list[Any]:
        query = select(s.payments).order_by(s.payments.c.id)
        if account is not None:
            query = query.where(s.payments.c.account == account)
        with self.engine.connect() as conn:
            return list(conn.execute(query))

    def payment(self, payment_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(select(s.payments).where(s.payments.c.id == payment_id)).first()

    def journal(self, payment_id: int) -> list[tuple[str, int, list[tuple[str, int]]]]:
        """``(kind, amount, [(account, signed amount), ...])`` per journal row, in order."""
        j, e = s.journal.c, s.entries.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(j.id, j.kind, j.amount).where(j.payment_id == payment_id).order_by(j.id)
            ).all()
            return [
                (
                    kind,
                    amount,
                    [
                        (code, value)
                        for code, value in conn.execute(
                            select(e.account_code, e.amount)
                            .where(e.journal_id == jid)
                            .order_by(e.id)
                        )
                    ],
                )
                for jid, kind, amount in rows
            ]

    def requests(self, stan: str, transmitted: str) -> list[Any]:
        r = s.requests.c
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(s.requests).where(r.stan == stan, r.transmitted == transmitted))
            )

    def count(self, table: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(s.metadata.tables[table])
            ).scalar_one()

    def unbalanced(self) -> list[int]:
        with self.engine.connect() as conn:
            return unbalanced_journal_rows(conn)

    def check_invariants(self) -> None:
        """The full check of the ledger tests (tests/ledger/ledger_support.py): every
        journal row balances, a request key appears once, no debt is negative and each
        matches its allocations, every approved payment has its journal rows, a
        wallet's funds are minus the sum of its entries. AssertionError if not."""
        with self.engine.connect() as conn:
            assert_invariants(conn)

    def text_values(self) -> Iterator[tuple[str, str, str]]:
        """Every value of every text column of every table: ``(table, column, value)``."""
        with self.engine.connect() as conn:
            for table in s.metadata.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, String | Text)]
                if not columns:
                    continue
                for row in conn.execute(select(*columns)):
                    for column, value in zip(columns, row, strict=True):
                        if value is not None:
                            yield table.name, column.name, str(value)


@contextmanager
def writes_blocked(ledger: Ledger) -> Iterator[None]:
    """Hold the database's write lock so the switch's ledger writer waits."""
    with ledger.engine.connect() as conn:
        if ledger.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.execute(text("LOCK TABLE requests IN ACCESS EXCLUSIVE MODE"))
        try:
            yield
        finally:
            conn.rollback()


# -- wire helpers ----------------------------------------------------------


def answered(request: dict[str, str], response: dict[str, str], code: str) -> dict[str, str]:
    """Check ``response`` answers ``request`` (MTI, DE 11, 41, 32) with ``code``; return it."""
    assert response.get("39") == code, response
    assert response["t"] == response_mti(request["t"]), response
    for de in ("11", "32", "41"):
        assert response.get(de) == request.get(de), (de, response)
    return response


def call(client: IsoClient, request: dict[str, str], code: str = "00") -> dict[str, str]:
    return answered(request, client.call(request), code)


def biller_payment_id(request: dict[str, str]) -> str:
    """A request's payment id at an online biller (switch/steps/online.py): DE 32, DE 41,
    DE 7 with the year it falls in (tests/client.py's DE 7 is at most a day back), DE 11."""
    now = time.gmtime()
    year = now.tm_year - (1 if int(request["7"][:2]) - now.tm_mon > 6 else 0)
    return f"{request['32']}-{request['41'].strip()}-{year}{request['7']}-{request['11']}"


def receipt(response: dict[str, str]) -> int:
    """The payment id behind DE 48 RN (``P`` + 10 digits)."""
    rn = bill_data(response)["RN"]
    assert rn[0] == "P" and rn[1:].isdigit() and len(rn) == 11, rn
    return int(rn[1:])


def due_on_wire(client: IsoClient, account: str, **fields: str) -> int:
    """What a 0200/31 inquiry says the account owes (DE 48 DU), checked against DE 54."""
    from tests.client import inquiry

    response = call(client, inquiry(account, **fields))
    due = int(bill_data(response)["DU"])
    assert int(response["54"][-12:]) == due
    return due


def read_all(client: IsoClient, n: int) -> list[dict[str, str]]:
    return [client.recv() for _ in range(n)]


def by_stan(responses: Iterable[dict[str, str]]) -> dict[str, dict[str, str]]:
    result: dict[str, dict[str, str]] = {}
    for response in responses:
        assert response["11"] not in result, f"two responses for STAN {response['11']}"
        result[response["11"]] = response
    return result


def closed_by_switch(sock: socket.socket) -> bool:
    """True if the switch closes ``sock`` before its timeout; False if it stays open.

    Any bytes the switch still sends first (a 30 response) are skipped.
    """
    try:
        while True:
            if not sock.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
