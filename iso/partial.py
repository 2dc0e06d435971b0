"""Best-effort reading of a message that did not decode, to echo what can be read."""

from __future__ import annotations

import iso8583

from iso.dialect import SPEC

_SAFE_TO_ECHO = ("t", "3", "4", "7", "11", "12", "13", "32", "37", "41", "42", "49")


def decode_partial(raw: bytes) -> dict[str, str]:
    """The fields before the fault (only plain identifying ones), or ``{}``."""
    try:
        decoded, _ = iso8583.decode(bytes(raw), SPEC)
    except iso8583.DecodeError as exc:
        decoded = dict(exc.doc_dec)
    except Exception:
        return {}
    return {k: v for k, v in decoded.items() if k in _SAFE_TO_ECHO and _printable(v)}


def _printable(value: object) -> bool:
    return isinstance(value, str) and all(" " <= c <= "~" for c in value)
