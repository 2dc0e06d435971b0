"""File-descriptor headroom for holding many connections.

Each connection is a descriptor; the common soft limit of 1024 would make a
run with ``--idle-connections 5000`` fail with EMFILE half way, which looks
like a switch failure. The soft limit may be raised up to the hard limit
without privileges, so do that before connecting.
"""

from __future__ import annotations

import resource

SPARE_DESCRIPTORS = 64  # stdio, the reactor's own pipes, the database, logs


def ensure_fd_limit(connections: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE if needed; a warning when even the hard limit is short."""
    needed = connections + SPARE_DESCRIPTORS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        return f"descriptor limit {target} (hard) is below the {needed} this run needs"
    return None
