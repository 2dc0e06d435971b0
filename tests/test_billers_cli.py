"""``billswitch billers`` (issue 11): add, set and list billers; secrets read from a file,
stored sealed and shown by check value only; every mistake is one line naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine, select

from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load
from switch.ledger import schema as s
from switch.ledger.reference import load_reference
from switch.sealing import Sealer, check_value, home_sealer

SECRET = b"a-test-secret-of-enough-bytes"


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A migrated database with the demo data (its billers: UTIL01, MOB01, TEL01, PWR01)."""
    (tmp_path / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    settings = load(tmp_path / "billswitch.toml", home=tmp_path)
    prepare_database(settings, Hasher(load_or_create_key(tmp_path / "hash.key")))
    (tmp_path / "secret").write_bytes(SECRET + b"\n")
    return tmp_path


def _run(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["billers", *args, "--home", str(home)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _row(home: Path, code: str):  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    try:
        with engine.connect() as conn:
            return conn.execute(select(s.billers).where(s.billers.c.code == code)).first()
    finally:
        engine.dispose()


def _reference(home: Path):  # type: ignore[no-untyped-def]
    sealer = home_sealer(home)
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    try:
        with engine.connect() as conn:
            return load_reference(conn, sealer.open)
    finally:
        engine.dispose()


def test_add_an_outline_biller(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(
        home, capsys, "add", "MOB02", "--name", "Top-up", "--kind", "outline",
        "--currency", "944", "--min", "100", "--max", "5000", "--no-partial", "--overpay",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert out == "biller MOB02 added; running nodes serve it within 30 s\n"
    row = _row(home, "MOB02")
    assert (row.kind, row.currency, row.min_amount, row.max_amount) == ("outline", "944", 100, 5000)
    assert (row.partial_allowed, row.overpay_allowed, row.status) == (False, True, "active")
    assert (row.url, row.secret, row.timeout_ms, row.max_in_flight) == (None, None, 3000, 64)


def test_an_online_biller_secret_is_sealed_and_listed_by_check_value(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(
        home, capsys, "add", "TEL02", "--name", "Telecom Two", "--kind", "online",
        "--currency", "944", "--url", "http://127.0.0.1:8090/TEL02",
        "--secret-file", str(home / "secret"), "--timeout-ms", "1500", "--max-in-flight", "8",
    )  # fmt: skip
    assert (code, err) == (0, "")
    row = _row(home, "TEL02")
    assert SECRET.decode() not in row.secret and row.secret.startswith("v1:")
    assert Sealer(load_or_create_key(home / "hash.key")).open("TEL02", row.secret) == SECRET
    endpoint = _reference(home).endpoint("TEL02")
    assert (endpoint.url, endpoint.secret) == ("http://127.0.0.1:8090/TEL02", SECRET)
    assert (endpoint.timeout, endpoint.max_in_flight) == (1.5, 8)
    assert SECRET.decode() not in repr(endpoint)
    assert _reference(home).endpoint("MOB01") is None  # outline: no endpoint
    code, out, _ = _run(home, capsys, "list")
    assert code == 0 and SECRET.decode() not in out
    lines = {line.split()[0]: line.split() for line in out.splitlines()}
    assert lines["CODE"][:10] == [
        "CODE", "KIND", "CUR", "MIN", "MAX", "PARTIAL", "OVERPAY", "STATUS", "SECRET", "TIMEOUT",
    ]  # fmt: skip
    assert lines["TEL02"][:4] == ["TEL02", "online", "944", "0.01"]
    assert check_value(SECRET) in lines["TEL02"] and "1500" in lines["TEL02"]
    assert lines["MOB01"][3:8] == ["1.00", "AZN", "50000.00", "AZN", "yes"]
    assert "-" in lines["MOB01"]  # no secret


def test_the_demo_online_billers(home: Path) -> None:
    reference = _reference(home)
    tel, pwr = reference.endpoint("TEL01"), reference.endpoint("PWR01")
    assert (tel.url, tel.secret) == (
        "http://127.0.0.1:8090/TEL01",
        b"TEL01-demo-secret-not-for-production",
    )
    assert (pwr.url, pwr.secret) == (
        "http://127.0.0.1:8090/PWR01",
        b"PWR01-demo-secret-not-for-production",
    )
    assert reference.biller("TEL01").partial_allowed
    p = reference.biller("PWR01")
    assert (p.min_amount, p.max_amount, p.overpay_allowed) == (100, 1_000_000, True)
    m = reference.biller("MOB01")
    assert (m.kind, m.currency, m.min_amount, m.max_amount) == ("outline", "944", 100, 5_000_000)


def test_a_secret_sealed_for_one_biller_does_not_open_for_another(home: Path) -> None:
    sealer = Sealer(load_or_create_key(home / "hash.key"))
    sealed = sealer.seal("TEL01", SECRET)
    assert sealer.open("TEL01", sealed) == SECRET
    with pytest.raises(Exception, match="does not open"):
        sealer.open("PWR01", sealed)
    with pytest.raises(Exception, match="does not open"):
        Sealer(b"\x00" * 32).open("TEL01", sealed)


def test_set_changes_only_what_is_given(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(home, capsys, "set", "MOB01", "--max", "9000000", "--inactive")
    assert (code, err) == (0, "")
    assert out.startswith("biller MOB01 changed")
    row = _row(home, "MOB01")
    assert (row.max_amount, row.status, row.min_amount, row.kind) == (
        9_000_000,
        "inactive",
        100,
        "outline",
    )
    assert _run(home, capsys, "set", "MOB01", "--active")[0] == 0
    assert _row(home, "MOB01").status == "active"
    before = _row(home, "TEL01").secret
    assert _run(home, capsys, "set", "TEL01", "--secret-file", str(home / "secret"))[0] == 0
    assert _row(home, "TEL01").secret != before
    assert _reference(home).endpoint("TEL01").secret == SECRET
    # an outline biller made online needs its URL and secret
    code, _, err = _run(home, capsys, "set", "MOB01", "--kind", "online")
    assert (
        code == 2
        and err == "billswitch billers: an online biller needs --url (its API's base URL)\n"
    )


_ADD = ("add", "NEW01", "--name", "New", "--currency", "944")
ERRORS = [
    ((*_ADD, "--kind", "offline"), "kind 'offline': one of held, online, outline"),
    (("add", "NEW01", "--name", "New", "--currency", "94", "--kind", "held"), "currency '94'"),
    ((*_ADD, "--kind", "held", "--min", "500", "--max", "100"), "--min 500 is above --max 100"),
    ((*_ADD, "--kind", "held", "--min", "0"), "--min 0: at least 1"),
    ((*_ADD, "--kind", "online", "--url", "http://x/y"), "an online biller needs --secret-file"),
    ((*_ADD, "--kind", "online", "--secret-file", "SECRET"), "an online biller needs --url"),
    ((*_ADD, "--kind", "online", "--url", "ftp://x", "--secret-file", "SECRET"), "--url 'ftp://x'"),
    ((*_ADD, "--kind", "held", "--timeout-ms", "0"), "--timeout-ms 0: 1 to 600000"),
    (("add", "TOO-LONG-CODE", "--name", "N", "--currency", "944", "--kind", "held"), "biller code"),
    (("add", "MOB01", "--name", "N", "--currency", "944", "--kind", "held"), "MOB01 exists"),
    (("set", "NOPE01", "--inactive"), "no biller 'NOPE01'"),
    (("set", "MOB01",), "nothing to change"),
    (("set", "MOB01", "--min", "6000000"), "--min 6000000 is above --max 5000000"),
    ((*_ADD, "--kind", "online", "--url", "http://x", "--secret-file", "SHORT"), "at least 16"),
    ((*_ADD, "--kind", "online", "--url", "http://x", "--secret-file", "MISSING"), "--secret-file"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_mistakes_are_one_line_and_change_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    (home / "short").write_bytes(b"too short")
    files = {"SECRET": home / "secret", "SHORT": home / "short", "MISSING": home / "missing"}
    args = tuple(str(files.get(a, a)) for a in args)
    before = _run(home, capsys, "list")[1]
    code, out, err = _run(home, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("billswitch billers: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _run(home, capsys, "list")[1] == before


def test_without_hash_key_secrets_are_not_sealed_nor_shown(
    home: Path, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    """A command run with a --home lacking the nodes' hash.key must not make a new key
    (it would seal secrets no node can open); a listing then says 'sealed'."""
    other = tmp_path_factory.mktemp("other")
    shutil.copy(home / "billswitch.db", other / "billswitch.db")
    code, _, err = _run(
        other, capsys, "add", "TEL03", "--name", "T", "--kind", "online", "--currency", "944",
        "--url", "http://x", "--secret-file", str(home / "secret"),
    )  # fmt: skip
    assert code == 2 and "no hash.key in" in err
    assert not (other / "hash.key").exists()
    out = _run(other, capsys, "list")[1]
    tel01 = next(line.split() for line in out.splitlines() if line.startswith("TEL01"))
    assert tel01[8:10] == ["active", "sealed"]
