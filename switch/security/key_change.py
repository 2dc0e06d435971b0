"""Dynamic key change (0800, DE 70 = 161): a new TPK or TAK for a terminal.

DE 53 positions 3-4 say which key (01 TPK, 02 TAK). The HSM generates the key
and exports it under the terminal's TMK; the switch stores it under the LMK
as the active key, and the previous one keeps working for ``key_grace``
seconds, for messages already in flight. The 0810 carries DE 48 KY (the new
key under the TMK, hex) and KC (its check value).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection

from hsm_sim.interface import KeyUnderLmk
from iso.bill_data import build_bill_data
from switch.errors import FormatError, NotSupported
from switch.security.keystore import HSM_KEY_TYPES, KeyRing, add_key, load_keys, owner_of
from switch.services import Services
from switch.transaction import Transaction

WHICH_KEY = {"01": "TPK", "02": "TAK"}


async def key_change(t: Transaction, sv: Services) -> dict[str, str]:
    assert t.terminal is not None
    name = WHICH_KEY.get(t.field("53")[2:4])
    if name is None:
        raise FormatError("53", "positions 3-4 must be 01 (TPK) or 02 (TAK)")
    owner = owner_of(t.terminal.acquirer_id, t.terminal.terminal_id)
    tmk = sv.keys().active(owner, "TMK")
    if tmk is None:
        raise NotSupported("no TMK for this terminal")
    generated = await sv.hsm.generate_key(HSM_KEY_TYPES[name], "U", export_under=tmk)
    ring = await sv.reads.transaction(
        _store, owner, name, generated.under_lmk, sv.key_grace, datetime.now(UTC)
    )
    sv.set_keys(ring)
    under_tmk = generated.under_kek or ""
    key_hex = under_tmk[1:] if under_tmk[:1].isalpha() and len(under_tmk) % 2 else under_tmk
    out = {"48": build_bill_data({"KY": key_hex, "KC": generated.under_lmk.kcv[:6]})}
    return t.response("00", out | {"53": t.request["53"]})


def _store(
    conn: Connection, owner: str, name: str, key: KeyUnderLmk, grace: float, now: datetime
) -> KeyRing:
    add_key(conn, owner, name, key, now, grace=grace)
    return load_keys(conn)
