"""``billswitch cards``: a card is named by its wallet, never by its PAN; errors are one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from switch.cli import main


def test_reset_of_an_unknown_card_names_it_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--home", str(tmp_path)]) == 0
    assert main(["cards", "--home", str(tmp_path), "reset-tries", "W-nothing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("billswitch cards: no card with wallet 'W-nothing'")
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_list_on_an_empty_database_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--home", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["cards", "--home", str(tmp_path), "list"]) == 0
    assert capsys.readouterr().out == "no on-us cards\n"
