"""``billswitch keys``: keys go in under the LMK only; output shows check values, never keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hsm_sim.crypto.kcv import kcv_des
from switch.app import prepare_database
from switch.cardholder import Hasher, load_or_create_key
from switch.cli import main
from switch.config import load

COMPONENTS = ["0123456789ABCDEF0123456789ABCDEF", "1032547698BADCFE1032547698BADCFE"]


@pytest.fixture(autouse=True)
def _demo_database(tmp_path: Path) -> None:
    """The commands work on an existing database; the demo's terminals are the owners."""
    (tmp_path / "billswitch.toml").write_text('demo_data = true\n[hsm]\nlmk = "test"\n')
    settings = load(tmp_path / "billswitch.toml", home=tmp_path)
    prepare_database(settings, Hasher(load_or_create_key(tmp_path / "hash.key")))


def _keys(home: Path, *args: str) -> int:
    return main(["keys", "--home", str(home), "--config", str(home / "billswitch.toml"), *args])


def _dump(home: Path) -> str:
    engine = create_engine(f"sqlite:///{home / 'billswitch.db'}")
    with engine.connect() as conn:
        rows = conn.execute(text("select * from keys")).all()
    engine.dispose()
    return repr(rows).upper()


def test_ceremony_xors_components_and_stores_only_under_the_lmk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    typed = iter(COMPONENTS)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    assert _keys(tmp_path, "import", "--owner", "100001:ATM00003", "--kind", "TMK") == 0
    clear = bytes(a ^ b for a, b in zip(*(bytes.fromhex(c) for c in COMPONENTS), strict=True))
    expected_kcv = kcv_des(clear)[:3].hex().upper()
    out = capsys.readouterr().out
    assert expected_kcv in out
    stored = _dump(tmp_path)
    assert expected_kcv in stored
    for secret in [*COMPONENTS, clear.hex().upper()]:
        assert secret not in stored and secret not in out


def test_generate_list_retire(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _keys(tmp_path, "generate", "--owner", "200002:", "--kind", "ZAK") == 0
    assert _keys(tmp_path, "list") == 0
    listing = capsys.readouterr().out
    assert "200002:" in listing and "ZAK" in listing and "active" in listing
    key_id = next(
        r.split()[0] for r in listing.splitlines() if r.split()[1:3] == ["200002:", "ZAK"]
    )
    assert _keys(tmp_path, "retire", key_id, "--yes") == 0
    assert _keys(tmp_path, "retire", key_id, "--yes") == 2  # already retired: a clear error
    assert "not retired already" in capsys.readouterr().err


def test_bad_component_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("getpass.getpass", lambda prompt="": "not hex")
    assert _keys(tmp_path, "import", "--owner", "100001:ATM00003", "--kind", "TPK") == 2
    assert "component 1 is not hex" in capsys.readouterr().err
