"""``bench --biller-sim``: the bench switch's config leaves the billers to the child server."""

from __future__ import annotations

import tomllib

from loadtest import online_billers
from loadtest.switch_process import switch_config
from switch import config


def test_the_bench_switch_does_not_serve_the_billers_itself(tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = switch_config(top=online_billers.CONFIG)
    parsed = tomllib.loads(text)
    assert parsed["demo_biller_sim"] is False
    assert parsed["reference_refresh"] == online_billers.REFRESH_S
    assert parsed["channels"]["atm"]["port"] == 0
    path = tmp_path / "bench.toml"
    path.write_text(text)
    settings = config.load(path, home=tmp_path)
    assert settings.demo_biller_sim is False


def test_without_it_the_config_is_as_before() -> None:
    assert "demo_biller_sim" not in tomllib.loads(switch_config())
