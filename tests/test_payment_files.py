"""Payment files out (issue 12), on SQLite and PostgreSQL: a day of payments and reversals
makes the files billers.md describes, signed by the switch's key; made again they are the
same bytes; a tampered file fails; the CLI says what went wrong in one line."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, update

from switch.cli import main
from switch.debt_signing import (
    fingerprint,
    public_key_from_text,
    public_key_pem,
    public_of,
    verify,
)
from switch.ledger import schema as s
from switch.payment_files import (
    PaymentFileError,
    _attr,
    export_payment_files,
    file_path,
    signature_path,
)
from switch.signing_key import SigningKeyError, load_or_create_signing_key, signing_key_path
from tests.ledger.ledger_support import (
    DAY,
    NEXT_DAY,
    NOW,
    billers,
    open_ledger,
    payment,
    record_one,
    reversal,
)

LATER = datetime(2026, 11, 23, 9, 30, 5, tzinfo=UTC)
HELD = {"FEE01", "FULL01", "OVER01", "UTIL01"}  # the demo's held biller and the test ones
HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n'


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def ledger(db_url: str) -> Iterator[Engine]:
    engine = open_ledger(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def key(tmp_path: Path) -> Ed25519PrivateKey:
    return load_or_create_signing_key(tmp_path / "home")


def _pay(ledger: Engine, biller: str, account: str, amount: int, **kw) -> tuple:  # type: ignore[no-untyped-def]
    order = payment(billers(ledger)[biller], account, amount, **kw)
    recorded = record_one(ledger, order, _now(kw))
    assert recorded.code == "00", recorded
    return order, int(recorded.response["payment_id"])


def _now(kw: dict) -> datetime:  # type: ignore[type-arg]
    return LATER if kw.get("day") == NEXT_DAY else NOW


def _reverse(ledger: Engine, order, kept: int = 0, day: date = DAY) -> None:  # type: ignore[no-untyped-def]
    recorded = record_one(ledger, reversal(order, kept, day=day), LATER if day == NEXT_DAY else NOW)
    assert recorded.code == "00", recorded


def _day(ledger: Engine, day: date, state: str = "closed") -> None:
    with ledger.begin() as conn:
        conn.execute(insert(s.business_days).values(day=day, state=state))


def _pid(payment_id: int) -> str:
    return f"P{payment_id:010d}"


def _day_of_payments(ledger: Engine) -> dict[str, object]:
    """DAY: two payments listed, one reversed whole the same day (left out), one partly
    reversed the same day (listed with what is left); DAY closed."""
    p1, id1 = _pay(ledger, "UTIL01", "1000001", 12345)
    p2, id2 = _pay(ledger, "UTIL01", "1000002", 600000)  # 202610 whole, 202611 in part
    p3, _ = _pay(ledger, "UTIL01", "1000002", 1000)
    _reverse(ledger, p3)
    p4, id4 = _pay(ledger, "OVER01", "O1", 3000)
    _reverse(ledger, p4, kept=1000)
    _day(ledger, DAY)
    return {"p1": p1, "id1": id1, "p2": p2, "id2": id2, "p4": p4, "id4": id4}


def _next_day(ledger: Engine, day1: dict) -> int:  # type: ignore[type-arg]
    """NEXT_DAY: DAY's first payment reversed whole, its second in two parts; one new
    payment; NEXT_DAY closed."""
    _reverse(ledger, day1["p1"], day=NEXT_DAY)
    _reverse(ledger, day1["p2"], kept=400000, day=NEXT_DAY)
    _reverse(ledger, day1["p2"], kept=100000, day=NEXT_DAY)
    _, id5 = _pay(ledger, "UTIL01", "1000001", 345, day=NEXT_DAY, stan="777777")
    _day(ledger, NEXT_DAY)
    return id5


def _read(out: Path, biller: str, day: date) -> str:
    return file_path(out, biller, day).read_text(encoding="utf-8")


def _verifies(path: Path, raw_public: bytes) -> bool:
    return verify(raw_public, signature_path(path).read_bytes(), path.read_bytes())


def test_a_day_of_payments_and_reversals_makes_the_expected_files(
    ledger: Engine, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    d1 = _day_of_payments(ledger)
    out = tmp_path / "out"
    written = export_payment_files(ledger, DAY, out, key)
    assert sorted(written) == sorted(file_path(out, b, DAY) for b in HELD)
    p1, p2, p4 = (d1[k].key.stan for k in ("p1", "p2", "p4"))  # type: ignore[attr-defined]
    assert _read(out, "UTIL01", DAY) == (
        f'{HEAD}<payments biller="UTIL01" business_day="2026-11-22" currency="944"'
        ' count="2" total="612345">\n'
        f'  <payment id="{_pid(d1["id1"])}" account="1000001" amount="12345"'  # type: ignore[arg-type]
        f' paid_at="2026-11-22T10:15:00Z" channel="ATM" acquirer="100001" rrn="R{p1}"'
        ' invoice="7822"/>\n'
        f'  <payment id="{_pid(d1["id2"])}" account="1000002" amount="600000"'  # type: ignore[arg-type]
        f' paid_at="2026-11-22T10:15:00Z" channel="ATM" acquirer="100001" rrn="R{p2}"'
        ' invoice="7823 7824"/>\n'
        "</payments>\n"
    )
    assert _read(out, "OVER01", DAY) == (
        f'{HEAD}<payments biller="OVER01" business_day="2026-11-22" currency="944"'
        ' count="1" total="1000">\n'
        f'  <payment id="{_pid(d1["id4"])}" account="O1" amount="1000"'  # type: ignore[arg-type]
        f' paid_at="2026-11-22T10:15:00Z" channel="ATM" acquirer="100001" rrn="R{p4}"/>\n'
        "</payments>\n"
    )
    assert _read(out, "FEE01", DAY) == (
        f'{HEAD}<payments biller="FEE01" business_day="2026-11-22" currency="944"'
        ' count="0" total="0">\n</payments>\n'
    )
    raw = public_of(key)
    assert all(_verifies(path, raw) for path in written)


def test_a_reversal_of_an_earlier_day_is_in_the_next_days_file(
    ledger: Engine, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    d1 = _day_of_payments(ledger)
    id5 = _next_day(ledger, d1)
    out = tmp_path / "out"
    export_payment_files(ledger, NEXT_DAY, out, key)
    assert _read(out, "UTIL01", NEXT_DAY) == (
        f'{HEAD}<payments biller="UTIL01" business_day="2026-11-23" currency="944"'
        ' count="1" total="345">\n'
        f'  <payment id="{_pid(id5)}" account="1000001" amount="345"'
        ' paid_at="2026-11-23T09:30:05Z" channel="ATM" acquirer="100001" rrn="R777777"'
        ' invoice="7822"/>\n'
        f'  <reversal id="{_pid(d1["id1"])}" amount="12345"/>\n'  # type: ignore[arg-type]
        f'  <reversal id="{_pid(d1["id2"])}" amount="500000"/>\n'  # type: ignore[arg-type]
        "</payments>\n"
    )
    assert "<reversal" not in _read(out, "OVER01", NEXT_DAY)
    assert _verifies(file_path(out, "UTIL01", NEXT_DAY), public_of(key))


def test_export_again_is_the_same_bytes_whatever_happened_since(
    ledger: Engine, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    d1 = _day_of_payments(ledger)
    first, again = tmp_path / "first", tmp_path / "again"
    export_payment_files(ledger, DAY, first, key)
    _next_day(ledger, d1)  # DAY's payments reversed, new payments: none of it is DAY's
    export_payment_files(ledger, DAY, again, key)
    export_payment_files(ledger, DAY, again, key)  # over the files already there
    for biller in HELD:
        a, b = file_path(first, biller, DAY), file_path(again, biller, DAY)
        assert a.read_bytes() == b.read_bytes()
        assert signature_path(a).read_bytes() == signature_path(b).read_bytes()
    assert sorted(p.name for p in (again / "UTIL01").iterdir()) == [
        "UTIL01-2026-11-22.xml",
        "UTIL01-2026-11-22.xml.sig",
    ]  # no temporary file left behind


def test_a_tampered_file_fails_verification(
    ledger: Engine, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    _day_of_payments(ledger)
    out = tmp_path / "out"
    export_payment_files(ledger, DAY, out, key)
    path = file_path(out, "UTIL01", DAY)
    assert _verifies(path, public_of(key))
    path.write_bytes(path.read_bytes().replace(b'amount="12345"', b'amount="12346"'))
    assert not _verifies(path, public_of(key))
    other = Ed25519PrivateKey.generate()
    assert not _verifies(file_path(out, "OVER01", DAY), public_of(other))


OPENSSL = shutil.which("openssl")


@pytest.mark.skipif(OPENSSL is None, reason="openssl not on PATH")
def test_openssl_verifies_a_payment_file_with_the_printed_public_key(
    ledger: Engine, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """Checked from outside: what a biller would run, OpenSSL's own Ed25519 over the file
    and the raw 64-byte .sig, with the public key as the switch prints it (PEM)."""
    _day_of_payments(ledger)
    out = tmp_path / "out"
    export_payment_files(ledger, DAY, out, key)
    pem = tmp_path / "switch-public.pem"
    pem.write_text(public_key_pem(public_of(key)))
    path = file_path(out, "UTIL01", DAY)

    def openssl_verifies(data: Path) -> bool:
        argv = [OPENSSL, "pkeyutl", "-verify", "-pubin", "-inkey", str(pem), "-rawin"]
        argv += ["-in", str(data), "-sigfile", str(signature_path(path))]
        return subprocess.run(argv, capture_output=True, check=False).returncode == 0

    assert openssl_verifies(path)
    tampered = tmp_path / "tampered.xml"
    tampered.write_bytes(path.read_bytes().replace(b'amount="12345"', b'amount="12346"'))
    assert not openssl_verifies(tampered)


def test_an_unknown_or_open_day_is_refused(
    ledger: Engine, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    with pytest.raises(PaymentFileError, match="unknown to the ledger"):
        export_payment_files(ledger, date(2026, 1, 1), tmp_path, key)
    _day(ledger, DAY, "open")
    with pytest.raises(PaymentFileError, match="still open"):
        export_payment_files(ledger, DAY, tmp_path, key)
    assert not any(tmp_path.rglob("*.xml"))
    with ledger.begin() as conn:
        conn.execute(update(s.business_days).values(state="closed"))
    assert len(export_payment_files(ledger, DAY, tmp_path, key)) == len(HELD)


def test_attribute_values_are_escaped() -> None:
    assert _attr("1000001") == "1000001"
    assert _attr('A&B "<x>"\t\n\x01') == "A&amp;B &quot;&lt;x&gt;&quot;&#9;&#10;\ufffd"


# ---------------------------------------------------------------- the signing key


def test_the_signing_key_is_made_once_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_or_create_signing_key(home)
    path = signing_key_path(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public_of(load_or_create_signing_key(home)) == public_of(key)
    assert [p.name for p in home.iterdir()] == ["signing.key"]


def test_a_signing_key_readable_by_others_is_tightened_and_a_bad_one_refused(
    tmp_path: Path,
) -> None:
    load_or_create_signing_key(tmp_path)
    path = signing_key_path(tmp_path)
    os.chmod(path, 0o644)
    load_or_create_signing_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("not a key\n")
    with pytest.raises(SigningKeyError, match="signing.key: not a signing key"):
        load_or_create_signing_key(tmp_path)


# ---------------------------------------------------------------- the CLI


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_public_key_then_export_verifies_with_what_it_printed(
    ledger: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _day_of_payments(ledger)
    home = tmp_path / "home"
    code, out, err = _cli(capsys, "payments", "public-key", "--home", str(home))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    shown, hex_key = lines[0].split()[1], lines[1].split()[1]
    pem = "\n".join(lines[2:])
    raw = bytes.fromhex(hex_key)
    assert public_key_from_text(pem) == raw and fingerprint(raw) == shown
    code, out, _ = _cli(capsys, "payments", "public-key", "--pem", "--home", str(home))
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----") and out.strip() == pem
    assert stat.S_IMODE(signing_key_path(home).stat().st_mode) == 0o600

    args = ("payments", "export", "--business-day", "2026-11-22", "--home", str(home))
    code, out, err = _cli(capsys, *args, "--db", db_url)
    assert (code, err) == (0, "")
    path = home / "payments" / "UTIL01" / "UTIL01-2026-11-22.xml"
    assert f"{path}: UTIL01 2 payments, total 612345; 0 earlier payments reversed, 0" in out
    assert f"signed with key {shown}" in out
    assert verify(raw, signature_path(path).read_bytes(), path.read_bytes())
    before = path.read_bytes(), signature_path(path).read_bytes()
    assert _cli(capsys, *args, "--db", db_url)[0] == 0
    assert (path.read_bytes(), signature_path(path).read_bytes()) == before


def test_cli_errors_are_one_line(
    ledger: Engine, db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = ("--home", str(tmp_path), "--db", db_url)
    code, out, err = _cli(capsys, "payments", "export", "--business-day", "2026-01-01", *home)
    assert code == 2
    assert err == (
        "billswitch payments: business day 2026-01-01: unknown to the ledger"
        " (no payment was ever posted on it)\n"
    )
    _day(ledger, DAY, "open")
    code, _, err = _cli(capsys, "payments", "export", "--business-day", "2026-11-22", *home)
    assert code == 2 and "2026-11-22: still open" in err and err.count("\n") == 1
    with ledger.begin() as conn:
        conn.execute(update(s.business_days).values(state="closed"))
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    code, _, err = _cli(
        capsys, "payments", "export", "--business-day", "2026-11-22", "--out", str(blocked), *home
    )
    assert code == 2 and err.startswith(f"billswitch payments: {blocked}/")
    assert "cannot write payment files: Not a directory" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exc:
        main(["payments", "export", "--business-day", "22.11.2026", *home])
    assert exc.value.code == 2
    assert "'22.11.2026': a date, YYYY-MM-DD" in capsys.readouterr().err
    empty = ("--home", str(tmp_path / "none"))
    code, _, err = _cli(capsys, "payments", "export", "--business-day", "2026-11-22", *empty)
    assert code == 2 and err.startswith("billswitch payments: no database at ")
    assert not (tmp_path / "none").exists()  # a wrong --home is said, not made
