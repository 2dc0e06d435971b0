"""``python -m loadtest.payment_files`` (the 1,000,000-payment export benchmark), at a small
scale: the seeded day exports, the file holds what was seeded, the schema is dropped."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from loadtest.payment_files import DAY, main
from switch.payment_files import file_path
from tests.conftest import PG_URL, require_postgres


@pytest.mark.postgres
def test_a_small_run_exports_the_seeded_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    engine = create_engine(PG_URL)
    before = set(inspect(engine).get_schema_names())
    args = ["--db", PG_URL, "--payments", "300", "--reversals", "20", "--home", str(tmp_path)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert out.startswith("300 payments (20 reversals)") and "signature verifies" in out
    text = file_path(tmp_path / "payments", "UTIL01", DAY).read_text(encoding="utf-8")
    assert text.count("<payment ") == 290 and text.count("<reversal ") == 10
    assert 'count="290"' in text
    assert set(inspect(engine).get_schema_names()) == before
    engine.dispose()
