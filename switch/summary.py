"""The start-up summary: one line telling an operator what this node is and runs on.

Version, database (a path, or the URL without its password), HSM and the LMK
it holds (by check value), each channel (host:port, framing, TPDU, MAC, TLS),
the metrics address and the admin API's, the outbox's delivery pace. Test
material in use is warned of on lines of its own (the test LMK by custody,
demo material by the database preparation), so a log search for "warning" finds each one.
"""

from __future__ import annotations

from typing import Any

from switch.config import Settings, masked_url


def summary(settings: Settings, ports: dict[str, int], lmk: str, version: str) -> dict[str, Any]:
    """The fields of the ``started`` log line."""
    channels = [
        f"{c.name} {c.kind} {c.host}:{ports.get(c.name, c.port)} {c.framing}"
        f"{' tpdu' if c.tpdu else ''} mac={c.mac} tls=off"
        for c in settings.channels
        if c.enabled
    ]
    metrics = f"127.0.0.1:{ports['metrics']}" if "metrics" in ports else "off"
    return {
        "version": version,
        "database": masked_url(settings.db_url()),
        "hsm": settings.hsm.url,
        "lmk": lmk,
        "channels": channels,
        "metrics": metrics,
        "admin": "not built yet",
        "outbox": f"poll {settings.outbox.poll:g}s lease {settings.outbox.lease:g}s"
        f" backoff {settings.outbox.backoff_base:g}-{settings.outbox.backoff_cap:g}s",
        "workers": settings.workers,
    }
