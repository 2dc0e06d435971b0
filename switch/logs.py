"""Logging setup: structlog, key=value or JSON lines, never a card number.

Log calls pass identifiers only (MTI, STAN, terminal, response code); the
scrubber below is a second line of defence that masks anything shaped like a
PAN that slips into an event.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

_PAN = re.compile(r"(?<!\d)(\d{6})\d{3,9}(\d{4})(?!\d)")


def _scrub(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = _PAN.sub(lambda m: m.group(1) + "******" + m.group(2), value)
    return event


def configure(level: str = "info", json: bool = False, worker: int | None = None) -> None:
    """``worker``: this process's index among several workers, added to every line."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    logging.basicConfig(level=numeric, stream=sys.stderr, format="%(message)s")
    renderer = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *([_tag(worker)] if worker is not None else []),
            _scrub,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line: worker processes share stderr without mixing lines.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _tag(worker: int) -> Any:
    def add_worker(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event["worker"] = worker
        return event

    return add_worker
