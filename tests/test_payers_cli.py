"""``billswitch payers`` (issue 12): add, remove and list payer codes, on SQLite and
PostgreSQL; every mistake is one line naming it, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog
from sqlalchemy import create_engine

from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load
from switch.ledger import payer_codes


@pytest.fixture(autouse=True)
def _logs_to_this_tests_stderr() -> None:
    structlog.reset_defaults()


@pytest.fixture
def where(tmp_path: Path, db_url: str) -> list[str]:
    """A migrated database with the demo data (PC1000001 among it); the CLI's options."""
    (tmp_path / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    settings = load(tmp_path / "billswitch.toml", home=tmp_path, db=db_url)
    prepare_database(settings, Hasher(load_or_create_key(tmp_path / "hash.key")))
    return ["--home", str(tmp_path), "--db", db_url]


def _run(where: list[str], capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["payers", *args, *where])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _codes(where: list[str]) -> dict[str, list[str]]:
    engine = create_engine(where[3])
    try:
        with engine.connect() as conn:
            found = payer_codes.listing(conn)
    finally:
        engine.dispose()
    return {code: [f"{h.biller}:{h.account}" for h in hs] for code, hs in found.items()}


def test_the_demo_payer_code_is_there(where: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    assert _run(where, capsys, "list") == (0, "PC1000001  UTIL01:1000002 TEL01:5550001\n", "")


def test_add_several_accounts_at_one_biller_then_remove(where: list[str], capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = _run(where, capsys, "add", "PC7", "UTIL01:1000010", "UTIL01:1000011")
    assert (code, out, err) == (0, "payer code PC7: 2 account(s) added\n", "")
    assert _run(where, capsys, "add", "PC7", "UTIL01:1000010", "TEL01:5550009")[0] == 0
    assert _codes(where)["PC7"] == ["UTIL01:1000010", "UTIL01:1000011", "TEL01:5550009"]
    assert _run(where, capsys, "remove", "PC7", "UTIL01:1000011")[0] == 0
    assert _codes(where)["PC7"] == ["UTIL01:1000010", "TEL01:5550009"]
    assert _run(where, capsys, "remove", "PC7")[1] == "payer code PC7: 2 account(s) removed\n"
    assert "PC7" not in _codes(where)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["add", "PC8", "NOSUCH:1"], "unknown biller NOSUCH"),
        (["add", "PC8", "UTIL01"], "expected BILLER:ACCOUNT"),
        (["add", "PC8", "UTIL01:a;b"], "no blank, ':' or ';'"),
        (["add", "PC-8", "UTIL01:1"], "1-32 letters and digits"),
        (["add", "PC8", *(f"UTIL01:{n}" for n in range(1000001, 1000018))], "at most 16"),
        (["remove", "PC1000001", "UTIL01:1"], "does not hold UTIL01:1"),
        (["remove", "PC404"], "no such payer code"),
    ],
)
def test_mistakes_are_one_line_and_change_nothing(
    where: list[str], capsys, args: list[str], says: str
) -> None:  # type: ignore[no-untyped-def]
    before = _codes(where)
    code, out, err = _run(where, capsys, *args)
    assert (code, out) == (2, "")
    assert err.startswith("billswitch payers: ") and says in err and err.count("\n") == 1
    assert _codes(where) == before
