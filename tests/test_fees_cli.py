"""``billswitch fees`` (issue 12): list, add and remove fee rules; every mistake is one line
naming it and changes nothing; what the command writes is what a node's snapshot prices
with. And ``billswitch billers set`` for the amount rules (--exact, --no-max)."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine, select

from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load
from switch.ledger import schema as s
from switch.ledger.fees import BILLER, PAYER, Fee
from switch.ledger.reference import Reference, load_reference


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A migrated database with the demo data (TEL01's demo fee rule is rule 1)."""
    (tmp_path / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    settings = load(tmp_path / "billswitch.toml", home=tmp_path)
    prepare_database(settings, Hasher(load_or_create_key(tmp_path / "hash.key")))
    return tmp_path


def _run(home: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--home", str(home)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _reference(home: Path) -> Reference:
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    try:
        with engine.connect() as conn:
            return load_reference(conn)
    finally:
        engine.dispose()


def test_the_demo_rule_is_listed(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(home, capsys, "fees", "list")
    assert (code, err) == (0, "")
    header, line = out.splitlines()
    assert header.split()[:3] == ["ID", "BILLER", "CHANNEL"]
    assert line.split() == ["1", "TEL01", "*", "*", "0", "1.00", "50", "-", "payer"]
    assert _reference(home).fees.price("TEL01", "POS", "100001", 10_000) == Fee(100, PAYER)


def test_the_demo_rule_is_added_once(home: Path) -> None:
    settings = load(home / "billswitch.toml", home=home)
    prepare_database(settings, Hasher(load_or_create_key(home / "hash.key")))
    assert len(_reference(home).fees) == 1


def test_add_list_and_remove(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        home, capsys, "fees", "add", "--biller", "UTIL01", "--channel", "pos",
        "--fixed", "20", "--percent", "0.25", "--min", "30", "--max", "400", "--paid-by", "biller",
    )  # fmt: skip
    assert code == 0 and out.startswith("fee rule 2 added; running nodes apply it within")
    assert _run(home, capsys, "fees", "add", "--acquirer", "200002", "--fixed", "5")[0] == 0
    fees = _reference(home).fees
    assert fees.price("UTIL01", "POS", "100001", 100_000) == Fee(270, BILLER)  # 20 + 250
    assert fees.price("UTIL01", "POS", "100001", 1_000) == Fee(30, BILLER)  # the minimum
    assert fees.price("UTIL01", "ATM", "200002", 1_000) == Fee(5, PAYER)  # the acquirer's
    assert fees.price("UTIL01", "ATM", "100001", 1_000) == Fee(0, PAYER)  # none matches
    listed = [line.split() for line in _run(home, capsys, "fees", "list")[1].splitlines()[1:]]
    # most specific first: biller + channel, biller, acquirer
    assert [row[0] for row in listed] == ["2", "1", "3"]
    assert listed[0] == ["2", "UTIL01", "POS", "*", "20", "0.25", "30", "400", "biller"]
    code, out, _ = _run(home, capsys, "fees", "remove", "2")
    assert code == 0 and out.startswith("fee rule 2 removed")
    assert _reference(home).fees.price("UTIL01", "POS", "100001", 100_000) == Fee(0, PAYER)


ERRORS = [
    (("add", "--biller", "TEL01", "--fixed", "9"), "fee rule 1 has this biller, channel and"),
    (("add", "--biller", "NOPE01"), "no biller 'NOPE01'"),
    (("add", "--acquirer", "999"), "no acquirer '999'"),
    (("add", "--channel", "WEB"), "--channel WEB: one of ATM, POS, HOST"),
    (("add", "--paid-by", "bank"), "--paid-by bank: one of payer, biller"),
    (("add", "--percent", "0.125"), "--percent '0.125'"),
    (("add", "--percent", "150"), "--percent 150: at most 100"),
    (("add", "--fixed", "-1"), "--fixed -1: 0 to 99999999"),
    (("add", "--min", "100000000"), "--min 100000000: 0 to 99999999"),
    (("add", "--min", "60", "--max", "50"), "--min 60 is above --max 50"),
    (("remove", "42"), "no fee rule 42"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), ERRORS, ids=[m for _, m in ERRORS])
def test_mistakes_are_one_line_and_change_nothing(
    home: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    before = _run(home, capsys, "fees", "list")[1]
    code, out, err = _run(home, capsys, "fees", *args)
    assert code == 2 and out == ""
    assert err.startswith("billswitch fees: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert _run(home, capsys, "fees", "list")[1] == before


def test_without_a_database_it_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(tmp_path / "nowhere", capsys, "fees", "list")
    assert code == 2 and "no database" in err and not (tmp_path / "nowhere").exists()


def test_billers_set_changes_the_amount_rules(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(home, capsys, "billers", "set", "UTIL01", "--exact", "--max", "900000")[0] == 0
    util = _reference(home).biller("UTIL01")
    assert util is not None
    assert (util.partial_allowed, util.overpay_allowed, util.max_amount) == (False, False, 900_000)
    assert _run(home, capsys, "billers", "set", "UTIL01", "--overpay", "--no-max")[0] == 0
    util = _reference(home).biller("UTIL01")
    assert util is not None
    assert (util.partial_allowed, util.overpay_allowed, util.max_amount) == (False, True, None)
    code, _, err = _run(home, capsys, "billers", "set", "UTIL01", "--exact", "--partial")
    assert code == 2 and err.endswith(": --exact allows neither --partial nor --overpay\n")
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    with engine.connect() as conn:
        row = conn.execute(select(s.billers).where(s.billers.c.code == "UTIL01")).one()
    engine.dispose()
    assert (row.partial_allowed, row.overpay_allowed) == (False, True)
