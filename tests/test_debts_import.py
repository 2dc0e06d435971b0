"""``billswitch debts import`` (issue 12, "Debt lists in"), on SQLite and PostgreSQL: a
signed list is what an inquiry then reads; every bad, unsigned, tampered or hostile file
is refused with one line and nothing changed; full and delta; idempotent; older refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, func, insert, select

from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load
from switch.debt_signing import fingerprint, verify
from switch.demo import DEMO_DEBT_KEYS
from switch.ledger import schema as s
from switch.ledger.queries import bill

UTIL01_KEY = DEMO_DEBT_KEYS["UTIL01"][0]
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def home(tmp_path: Path, db_url: str) -> Iterator[Path]:
    """The demo data (UTIL01 held, its published debt-file key) on each backend."""
    (tmp_path / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    os.environ["BILLSWITCH_DB"] = db_url
    try:
        settings = load(tmp_path / "billswitch.toml", home=tmp_path)
        prepare_database(settings, Hasher(load_or_create_key(tmp_path / "hash.key")))
        yield tmp_path
    finally:
        del os.environ["BILLSWITCH_DB"]


def _debts_file(
    home: Path,
    debts: list[tuple[str, str, int, str]],
    *,
    mode: str = "full",
    generated: str = "2026-11-01T00:00:00Z",
    biller: str = "UTIL01",
    currency: str = "944",
    name: str = "list.xml",
    sign_with: str | None = UTIL01_KEY,
) -> Path:
    lines = [
        f'  <debt account="{acc}" name="{who}" amount="{amount}" period="{period}"'
        f' invoice="I{acc}{period}" due="2026-11-25"/>'
        for acc, who, amount, period in debts
    ]
    body = (
        f'{HEAD}<debts biller="{biller}" currency="{currency}" mode="{mode}"'
        f' generated="{generated}">\n' + "\n".join(lines) + "\n</debts>\n"
    )
    path = home / name
    path.write_text(body, encoding="utf-8")
    if sign_with:
        _sign(path, sign_with)
    return path


def _sign(path: Path, key_hex: str) -> None:
    assert main(["debts", "sign", str(path), "--key-hex", key_hex]) == 0


def _import(home: Path, capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["debts", "import", str(path), "--home", str(home)])
    out, err = capsys.readouterr()
    return code, out, err


def _state(home: Path) -> tuple[list, list, list]:  # type: ignore[type-arg]
    """Everything an import may change."""
    engine = create_engine(os.environ["BILLSWITCH_DB"])
    try:
        with engine.connect() as conn:
            d = s.debts.c
            debts = conn.execute(
                select(d.account, d.period, d.amount_original, d.amount_open, d.invoice, d.due)
                .where(d.biller_code == "UTIL01")
                .order_by(d.account, d.period)
            ).all()
            customers = conn.execute(select(s.customers).order_by(s.customers.c.account)).all()
            files = conn.execute(select(s.debt_files.c.digest)).all()
            return debts, customers, files
    finally:
        engine.dispose()


def _assert_debts_balance() -> None:
    """The ledger's invariant after any import: open = original - what allocations hold."""
    engine = create_engine(os.environ["BILLSWITCH_DB"])
    try:
        with engine.connect() as conn:
            assert_debts_balance(conn)
    finally:
        engine.dispose()


def assert_debts_balance(conn) -> None:  # type: ignore[no-untyped-def]
    a, d = s.allocations.c, s.debts.c
    query = select(a.debt_id, func.sum(a.amount - a.reversed_amount)).group_by(a.debt_id)
    held = {debt: amount for debt, amount in conn.execute(query)}
    for debt_id, original, open_amount in conn.execute(
        select(d.id, d.amount_original, d.amount_open)
    ):
        assert 0 <= open_amount == original - held.get(debt_id, 0), debt_id


def _bill(account: str):  # type: ignore[no-untyped-def]
    engine = create_engine(os.environ["BILLSWITCH_DB"])
    try:
        with engine.connect() as conn:
            return bill(conn, "UTIL01", account, None)
    finally:
        engine.dispose()


def _open(account: str) -> dict[str, int]:
    found = _bill(account)
    return dict(found.debts) if found else {}


# -- the signature ----------------------------------------------------------------------


def test_rfc8032_test_vector_1_verifies() -> None:
    """RFC 8032 section 7.1, TEST 1: the empty message."""
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verify(public, signature, b"")
    assert not verify(public, signature, b"x")
    assert not verify(public, bytes(64), b"")


# -- applied, and what an inquiry then reads -------------------------------------------


def test_a_signed_full_list_is_what_an_inquiry_then_reads(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _open("1000002") == {"202610": 500000, "202611": 250000}  # the demo's debts
    path = _debts_file(
        home,
        [("1000001", "Gilman P.", 22345, "202611"), ("2000001", "Новый К.", 700, "202612")],
    )
    code, out, err = _import(home, capsys, path)
    assert (code, err) == (0, "")
    assert "2 debts listed, 1 new, 1 changed, 2 closed" in out
    assert _open("1000001") == {"202611": 22345}
    assert _open("1000002") == {}  # full: not in the file, closed
    new = _bill("2000001")
    assert (new.name, new.amount_due, new.debts) == ("Новый К.", 700, (("202612", 700),))
    debts, _, files = _state(home)
    assert ("2000001", "202612", 700, 700, "I2000001202612", date(2026, 11, 25)) in debts
    assert len(files) == 1
    _assert_debts_balance()


def test_delta_adds_changes_and_closes_only_what_it_lists(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _debts_file(
        home,
        [
            ("1000002", "Məmmədov Ə.", 0, "202610"),  # closed
            ("1000002", "Məmmədov Ə.", 260000, "202611"),  # changed
            ("1000003", "Батбаяр Д.", 999, "202611"),  # new
        ],
        mode="delta",
    )
    code, out, err = _import(home, capsys, path)
    assert (code, err) == (0, "")
    assert _open("1000001") == {"202611": 12345}  # not listed: untouched
    assert _open("1000002") == {"202611": 260000}
    assert _open("1000003") == {"202611": 999}
    _assert_debts_balance()


def test_the_same_file_twice_changes_nothing_and_an_older_one_is_refused(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _debts_file(home, [("1000001", "Gilman P.", 100, "202611")])
    assert _import(home, capsys, path)[0] == 0
    after = _state(home)
    code, out, err = _import(home, capsys, path)
    assert (code, err) == (0, "")
    assert "already applied" in out and "nothing changed" in out
    assert _state(home) == after
    older = _debts_file(
        home, [("1000001", "Gilman P.", 5, "202611")], generated="2026-10-31T23:59:59Z",
        name="older.xml",
    )  # fmt: skip
    code, out, err = _import(home, capsys, older)
    assert code == 2 and "not newer than" in err and len(err.splitlines()) == 1
    assert _state(home) == after


def test_payments_made_since_the_list_was_generated_are_not_claimed_again(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The biller's amount is as at ``generated``; what the switch took since stays paid."""
    engine = create_engine(os.environ["BILLSWITCH_DB"])
    try:
        with engine.begin() as conn:
            d = s.debts.c
            debt_id = conn.execute(
                select(d.id).where(d.account == "1000001", d.period == "202611")
            ).scalar_one()
            payment = conn.execute(
                insert(s.payments).values(
                    acquirer_id="100001",
                    terminal_id="ATM00001",
                    channel="ATM",
                    biller_code="UTIL01",
                    account="1000001",
                    amount=345,
                    fee=0,
                    reversed_amount=0,
                    currency="944",
                    advice=False,
                    auth_code="000001",
                    business_day=date(2026, 11, 2),
                    created_at=datetime(2026, 11, 2, 10, 0, tzinfo=UTC),
                )  # fmt: skip
            ).inserted_primary_key[0]
            conn.execute(
                insert(s.allocations).values(
                    payment_id=payment, debt_id=debt_id, amount=345, reversed_amount=0
                )
            )
    finally:
        engine.dispose()
    path = _debts_file(
        home, [("1000001", "Gilman P.", 12345, "202611")], generated="2026-11-02T09:00:00Z"
    )
    assert _import(home, capsys, path)[0] == 0
    assert _open("1000001") == {"202611": 12000}
    _assert_debts_balance()
    closing = _debts_file(
        home, [("1000002", "M", 1, "202611")], generated="2026-11-03T00:00:00Z", name="c.xml"
    )
    assert _import(home, capsys, closing)[0] == 0  # full: 1000001's debt closed, paid 345
    assert _open("1000001") == {}
    _assert_debts_balance()


# -- refusals: one line, exit 2, nothing changed -----------------------------------------

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE debts [\n <!ENTITY lol "lol">\n'
    ' <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">\n'
    ' <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">\n]>\n'
    '<debts biller="UTIL01" currency="944" mode="full" generated="2026-11-01T00:00:00Z">'
    '<debt account="1" name="&lol3;" amount="1" period="202611"/></debts>\n'
)
EXTERNAL = (
    '<?xml version="1.0"?>\n<!DOCTYPE debts [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    '<debts biller="UTIL01" currency="944" mode="full" generated="2026-11-01T00:00:00Z">'
    '<debt account="1" name="&x;" amount="1" period="202611"/></debts>\n'
)
DOCTYPE_ONLY = (
    '<?xml version="1.0"?>\n<!DOCTYPE debts SYSTEM "http://127.0.0.1:9/debts.dtd">\n'
    '<debts biller="UTIL01" currency="944" mode="full" generated="2026-11-01T00:00:00Z"/>\n'
)
UNDECLARED_ENTITY = (
    '<debts biller="UTIL01" currency="944" mode="full" generated="2026-11-01T00:00:00Z">\n'
    '<debt account="1" name="&x;" amount="1" period="202611"/></debts>\n'
)


def _hostile(body: str):  # type: ignore[no-untyped-def]
    def make(home: Path) -> Path:
        path = home / "hostile.xml"
        path.write_text(body)
        _sign(path, UTIL01_KEY)  # signed with the right key: refused for what it is
        return path

    return make


def _with_line(line: int, text: str):  # type: ignore[no-untyped-def]
    def make(home: Path) -> Path:
        path = _debts_file(
            home, [("1000001", "A", 1, "202611"), ("1000002", "B", 2, "202611")], name="bad.xml"
        )
        lines = path.read_text().splitlines()
        lines[line - 1] = text
        path.write_text("\n".join(lines) + "\n")
        _sign(path, UTIL01_KEY)
        return path

    return make


def _unsigned(home: Path) -> Path:
    return _debts_file(home, [("1000001", "A", 1, "202611")], sign_with=None)


def _bad_signature(home: Path) -> Path:
    path = _unsigned(home)
    Path(f"{path}.sig").write_bytes(bytes(64))
    return path


def _tampered(home: Path) -> Path:
    path = _debts_file(home, [("1000001", "A", 1, "202611")])
    path.write_bytes(path.read_bytes().replace(b'amount="1"', b'amount="9"'))
    return path


def _wrong_key(home: Path) -> Path:
    return _debts_file(home, [("1000001", "A", 1, "202611")], sign_with="11" * 32)


def _unknown_biller(home: Path) -> Path:
    return _debts_file(home, [("1000001", "A", 1, "202611")], biller="NOPE01")


def _not_held(home: Path) -> Path:
    return _debts_file(home, [("1000001", "A", 1, "202611")], biller="MOB01")


def _currency(home: Path) -> Path:
    return _debts_file(home, [("1000001", "A", 1, "202611")], currency="840")


def _duplicate(home: Path) -> Path:
    return _debts_file(home, [("1000001", "A", 1, "202611"), ("1000001", "A", 2, "202611")])


def _oversized(home: Path) -> Path:
    path = home / "huge.xml"
    with path.open("wb") as f:
        f.truncate(2 * 1024**3)  # 2 GiB, sparse: nothing written, nothing read
    Path(f"{path}.sig").write_bytes(bytes(64))
    return path


REFUSED = {
    "unsigned": (_unsigned, "no signature"),
    "bad signature": (_bad_signature, "not UTIL01's signature"),
    "tampered": (_tampered, "not UTIL01's signature"),
    "another key": (_wrong_key, "not UTIL01's signature"),
    "unknown biller": (_unknown_biller, "unknown biller NOPE01"),
    "not a held biller": (_not_held, "held billers only"),
    "currency": (_currency, "currency 840"),
    "bad period": (_with_line(3, '<debt account="1" name="A" amount="1" period="202613"/>'),
                   "line 3: period='202613'"),
    "bad amount": (_with_line(4, '<debt account="1" name="A" amount="-5" period="202611"/>'),
                   "line 4: amount='-5'"),
    "malformed": (_with_line(4, '<debt account="1" name="A" amount="1" period="202611">'),
                  "line 5: not well-formed XML"),
    "unknown element": (_with_line(3, "<credit/>"), "line 3: unexpected element <credit>"),
    "duplicate debt": (_duplicate, "line 4: account 1000001 period 202611 listed twice"),
    "billion laughs": (_hostile(BILLION_LAUGHS), "line 2: a DOCTYPE (DTD) is not allowed"),
    "external entity": (_hostile(EXTERNAL), "line 2: a DOCTYPE (DTD) is not allowed"),
    "doctype": (_hostile(DOCTYPE_ONLY), "line 2: a DOCTYPE (DTD) is not allowed"),
    "undeclared entity": (_hostile(UNDECLARED_ENTITY), "line 2: not well-formed XML: undefined"),
    "2 GB": (_oversized, "2147483648 bytes, more than debt_file_max_bytes"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_with_one_line_and_nothing_changed(
    case: str, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make, reason = REFUSED[case]
    path = make(home)
    before = _state(home)
    code, out, err = _import(home, capsys, path)
    assert code == 2, out
    assert err.startswith("billswitch debts: ") and "refused, nothing changed" in err
    assert reason in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert _state(home) == before


# -- billers set-key and list ------------------------------------------------------------


def test_set_key_from_pem_or_hex_shown_by_fingerprint(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    (home / "k.pem").write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    capsys.readouterr()
    assert main(["billers", "set-key", "UTIL01", str(home / "k.pem"), "--home", str(home)]) == 0
    assert fingerprint(raw) in capsys.readouterr().out
    assert main(["billers", "list", "--home", str(home)]) == 0
    listing = capsys.readouterr().out
    assert next(line for line in listing.splitlines() if line.startswith("UTIL01")).count(
        fingerprint(raw)
    )
    # The demo's published key no longer opens: a list signed with it is refused ...
    path = _debts_file(home, [("1000001", "A", 1, "202611")])
    assert _import(home, capsys, path)[0] == 2
    # ... and one signed with the new key is applied.
    _sign(path, private.private_bytes_raw().hex())
    assert _import(home, capsys, path)[0] == 0
    (home / "k.hex").write_text(DEMO_DEBT_KEYS["UTIL01"][1] + "\n")
    assert main(["billers", "set-key", "UTIL01", str(home / "k.hex"), "--home", str(home)]) == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("nonsense", "neither a PEM public key nor 64 hex digits"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "PRIVATE key"),
    ],
)
def test_set_key_refuses_what_is_not_a_public_key(
    home: Path, capsys: pytest.CaptureFixture[str], content: str, reason: str
) -> None:
    (home / "k").write_text(content)
    capsys.readouterr()
    assert main(["billers", "set-key", "UTIL01", str(home / "k"), "--home", str(home)]) == 2
    err = capsys.readouterr().err
    assert reason in err and len(err.splitlines()) == 1


# -- a payment in flight (PostgreSQL: row locks) -------------------------------------------


def test_a_payment_in_flight_is_waited_for_and_stays_paid(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A ledger batch holds a debt's row lock (as switch/ledger/locks.py takes it) while it
    pays 345; the import, started meanwhile, waits for that lock before it reads what was
    paid, so the payment committed under it is taken off the listed amount, not lost."""
    url = os.environ["BILLSWITCH_DB"]
    if not url.startswith("postgresql"):
        pytest.skip("SQLite's write lock serialises the two whole: no row locks to test")
    import threading
    import time

    from sqlalchemy import text, update

    path = _debts_file(home, [("1000001", "Gilman P.", 12345, "202611")])
    engine = create_engine(url)
    result: dict[str, tuple[int, str, str]] = {}
    try:
        with engine.connect() as batch:
            tx = batch.begin()
            d = s.debts.c
            debt_id = batch.execute(
                text("SELECT id FROM debts WHERE account = '1000001' AND period = '202611'"
                     " FOR UPDATE")
            ).scalar_one()  # fmt: skip
            payment = batch.execute(
                insert(s.payments).values(
                    acquirer_id="100001",
                    terminal_id="ATM00001",
                    channel="ATM",
                    biller_code="UTIL01",
                    account="1000001",
                    amount=345,
                    fee=0,
                    reversed_amount=0,
                    currency="944",
                    advice=False,
                    auth_code="000001",
                    business_day=date.today(),
                    created_at=datetime.now(UTC),
                )  # fmt: skip
            ).inserted_primary_key[0]
            batch.execute(
                insert(s.allocations).values(
                    payment_id=payment, debt_id=debt_id, amount=345, reversed_amount=0
                )
            )
            batch.execute(
                update(s.debts).where(d.id == debt_id).values(amount_open=d.amount_open - 345)
            )
            importer = threading.Thread(
                target=lambda: result.setdefault("import", _import(home, capsys, path))
            )
            importer.start()
            waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            with engine.connect() as probe:
                for _ in range(600):  # until the import waits for the batch's lock
                    if probe.execute(text(waiting)).scalar_one():
                        break
                    probe.rollback()  # pg_stat_activity is read once per transaction
                    time.sleep(0.05)
                else:
                    pytest.fail(f"the import never waited for the payment's row lock: {result}")
            assert "import" not in result
            tx.commit()
            importer.join(60)
    finally:
        engine.dispose()
    assert result["import"][0] == 0, result["import"]
    assert _open("1000001") == {"202611": 12000}
    _assert_debts_balance()
