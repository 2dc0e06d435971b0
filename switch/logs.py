"""Logging setup: structlog, key=value or JSON lines, never a card number.

Log calls pass identifiers only (MTI, STAN, terminal, response code); the
scrubber below is a second line of defence that masks anything shaped like a
PAN that slips into an event.
"""

from __future__ import annotations

import json as jsonlib
import logging
import re
import sys
from datetime import UTC, datetime
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
    _JSON[0] = json
    renderer = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        *([_tag(worker)] if worker is not None else []),
        _drop_none,
        _scrub,
    ]
    _route_stdlib(numeric, shared, renderer)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        # One write per line: worker processes share stderr without mixing lines.
        logger_factory=structlog.WriteLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )


def _route_stdlib(level: int, shared: list[Any], renderer: Any) -> None:
    """Libraries' stdlib log lines (Alembic, SQLAlchemy, Twisted) in the same format, so
    ``--log-json`` gives JSON only; Alembic's migration chatter only at debug level."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(level if level <= logging.DEBUG else logging.WARNING)


def _drop_none(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """A field without a value says nothing (``terminal=None`` on a host link)."""
    return {k: v for k, v in event.items() if v is not None}


_JSON = [False]  # whether configure() chose JSON lines


def announce(event: str, text: str, **fields: Any) -> None:
    """A line scripts and operators wait for (``listening``), whatever the log level:
    ``billswitch: TEXT``, or one JSON object under ``--log-json``."""
    if _JSON[0]:
        stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        line = jsonlib.dumps({"event": event, **fields, "level": "notice", "timestamp": stamp})
    else:
        line = f"billswitch: {text}"
    print(line, file=sys.stderr, flush=True)


def _tag(worker: int) -> Any:
    def add_worker(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
        event["worker"] = worker
        return event

    return add_worker
