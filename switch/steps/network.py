"""Network management (0800): sign-on, sign-off, echo test."""

from __future__ import annotations

from switch.errors import NotSupported
from switch.security.key_change import key_change
from switch.services import Services
from switch.transaction import Transaction


async def _sign_on(t: Transaction, sv: Services) -> None:
    assert t.terminal is not None
    await sv.sign_ons.sign_on(t.terminal.acquirer_id, t.terminal.terminal_id)


async def _sign_off(t: Transaction, sv: Services) -> None:
    assert t.terminal is not None
    await sv.sign_ons.sign_off(t.terminal.acquirer_id, t.terminal.terminal_id)


async def _echo(t: Transaction, sv: Services) -> None:
    """An echo test only proves the link is alive."""


KEY_CHANGE = "161"
ACTIONS = {"001": _sign_on, "002": _sign_off, "301": _echo}


async def network_management(t: Transaction, sv: Services) -> dict[str, str]:
    if t.field("70") == KEY_CHANGE:
        return await key_change(t, sv)
    action = ACTIONS.get(t.field("70"))
    if action is None:
        raise NotSupported("network management code not supported")
    await action(t, sv)
    return t.response("00")
