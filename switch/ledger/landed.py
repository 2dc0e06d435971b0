"""Whether a batch whose COMMIT failed landed: the truth, from the stored request rows.

A COMMIT that fails with a lost connection may have been carried out or not.
Answering 96 ("nothing recorded") would be a lie if it was, so the writer
asks the database on a new connection. On PostgreSQL it first makes sure the
old session is over (its transaction can then neither commit nor roll back
later); then every order whose request row is there with its own request
hash is answered with the stored response, and the others are known not to
have landed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, text

from switch.ledger import schema as s
from switch.ledger.orders import Order, Recorded, RequestKey

_r = s.requests.c
_STORED = select(
    _r.acquirer_id,
    _r.terminal_id,
    _r.stan,
    _r.transmitted,
    _r.mti,
    _r.request_hash,
    _r.response_code,
    _r.response,
).where(
    _r.stan.in_(bindparam("stans", expanding=True)),
    _r.transmitted.in_(bindparam("times", expanding=True)),
)


def stored_responses(conn: Connection, orders: Sequence[Order]) -> list[Recorded | None]:
    """Each order's stored response if its request row holds its own content, else None."""
    keys = {o.key for o in orders}
    params = {
        "stans": list({k.stan for k in keys}),
        "times": list({k.transmitted for k in keys}),
    }
    rows = {RequestKey(*row[:5]): row for row in conn.execute(_STORED, params)}
    found: list[Recorded | None] = []
    for order in orders:
        row = rows.get(order.key)
        if row is None or row.request_hash != order.request_hash:
            found.append(None)
        else:
            found.append(Recorded(row.response_code, json.loads(row.response)))
    return found


def session_over(conn: Connection, backend: tuple[int, Any]) -> bool:
    """Whether the PostgreSQL session ``backend`` is gone; if not, ask it to end.

    Once the session is gone its transaction is over, committed or not, for
    good: only then does looking for its rows tell the truth.
    """
    pid, started = backend
    if conn.info.get("backend", (None,))[0] == pid:
        return True  # the same session again: it is back in the pool, its transaction over
    where, params = "pid = :pid", {"pid": pid}
    if started is not None:  # a new session that got the same pid is not the one to end
        where, params = where + " AND backend_start = :started", {**params, "started": started}
    alive = conn.execute(text(f"SELECT 1 FROM pg_stat_activity WHERE {where}"), params).first()
    if alive is None:
        return True
    conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    return False
