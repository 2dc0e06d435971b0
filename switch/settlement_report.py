"""The settlement report of a business day: CSV and JSON under ``<home>/settlement/``.

Rendered from the lines the day's transfer fixed (``settlements.report``), never
from the ledger of the moment, so writing it again (a retry, ``billswitch settle``
for a settled day) gives the same bytes even if a biller's bank account changed
since. Amounts are integers of minor units; billers sorted by code and currency.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from sqlalchemy import Engine

from switch.atomic_files import write_atomic
from switch.ledger.settlement import Line, SettlementRefused, stored_lines

FOLDER = "settlement"
COLUMNS = ("biller", "currency", "count", "reversals", "amount", "fees", "net", "bank_account")
SUMMED = ("count", "reversals", "amount", "fees", "net")


def paths(home: Path, day: date) -> tuple[Path, Path]:
    """Where the report of ``day`` goes: (CSV, JSON)."""
    folder = home / FOLDER
    return folder / f"{day.isoformat()}.csv", folder / f"{day.isoformat()}.json"


def write_report(engine: Engine, day: date, home: Path) -> None:
    """The close-of-day task: write both files of ``day`` (settled already)."""
    with engine.connect() as conn:
        lines = stored_lines(conn, day)
    if lines is None:
        raise SettlementRefused(f"business day {day} has no settlement to report")
    csv_path, json_path = paths(home, day)
    write_atomic(json_path, render_json(day, lines))
    write_atomic(csv_path, render_csv(day, lines))


def render_json(day: date, lines: list[Line]) -> bytes:
    """``{business_day, billers: [...], totals: [per currency]}``, keys sorted."""
    billers = [{name: getattr(line, name) for name in COLUMNS} for line in lines]
    for item, line in zip(billers, lines, strict=True):
        item["journal_id"] = line.journal_id
    document = {"business_day": day.isoformat(), "billers": billers, "totals": totals(lines)}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def totals(lines: list[Line]) -> list[dict[str, object]]:
    """The day's sums per currency."""
    by_currency: dict[str, dict[str, object]] = {}
    for line in lines:
        total = by_currency.setdefault(line.currency, {"currency": line.currency})
        for name in SUMMED:
            total[name] = int(total.get(name, 0)) + getattr(line, name)  # type: ignore[call-overload]
    return [by_currency[currency] for currency in sorted(by_currency)]


def render_csv(day: date, lines: list[Line]) -> bytes:
    """One row per biller and currency, after a header; the day in every row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("business_day", *COLUMNS))
    for line in lines:
        values = [getattr(line, name) for name in COLUMNS]
        writer.writerow((day.isoformat(), *("" if v is None else v for v in values)))
    return out.getvalue().encode()
