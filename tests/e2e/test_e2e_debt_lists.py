"""A held biller's signed debt list imported by the CLI while the switch runs is what an
ATM inquiry then sees over ISO 8583, and what a payment then pays (issue 12)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import backend_url, call, sign_on_all, started

from switch.cli import main
from switch.demo import DEMO_DEBT_KEYS
from tests.client import IsoClient, bill_data, inquiry, payment
from tests.conftest import BACKENDS
from tests.switch_process import SwitchProcess

LIST = """<?xml version="1.0" encoding="UTF-8"?>
<debts biller="UTIL01" currency="944" mode="delta" generated="2026-11-05T00:00:00Z">
  <debt account="2000001" name="Smith J." amount="4321" period="202611" invoice="A1"/>
  <debt account="2000001" name="Smith J." amount="1000" period="202612" invoice="A2"/>
  <debt account="1000002" name="Məmmədov Ə." amount="0" period="202610"/>
</debts>
"""


@pytest.fixture(scope="module", params=BACKENDS)
def switch(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[SwitchProcess]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("debtlists")
    for url in backend_url(request.param, home):
        with started(home, url) as proc:
            sign_on_all(proc)
            yield proc


@pytest.fixture
def atm(switch: SwitchProcess) -> Iterator[IsoClient]:
    with switch.client("atm") as client:
        yield client


def test_an_imported_list_is_what_the_atm_sees_and_pays(
    switch: SwitchProcess, atm: IsoClient, tmp_path: Path
) -> None:
    assert bill_data(call(atm, inquiry("1000002")))["DU"] == "000000750000"
    path = tmp_path / "util01.xml"
    path.write_text(LIST, encoding="utf-8")
    assert main(["debts", "sign", str(path), "--key-hex", DEMO_DEBT_KEYS["UTIL01"][0]]) == 0
    where = ["--home", str(switch.home), "--db", switch.db_url]
    assert main(["debts", "import", str(path), *where]) == 0
    tags = bill_data(call(atm, inquiry("2000001")))
    assert (tags["DU"], tags["NM"]) == ("000000005321", "SMI*** J.")
    assert bill_data(call(atm, inquiry("1000002")))["DU"] == "000000250000"  # 202610 closed
    paid = bill_data(call(atm, payment("2000001", 4321)))
    assert paid["DU"] == "000000001000"  # the oldest period paid first
