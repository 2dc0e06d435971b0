"""Sign-on state: which terminals and host links have signed on to this node."""

from __future__ import annotations


class SignOns:
    """Terminals are keyed by (acquirer, terminal id); a host link by (acquirer, "")."""

    def __init__(self) -> None:
        self._signed_on: set[tuple[str, str]] = set()

    def sign_on(self, acquirer_id: str, terminal_id: str) -> None:
        self._signed_on.add((acquirer_id, terminal_id))

    def sign_off(self, acquirer_id: str, terminal_id: str) -> None:
        self._signed_on.discard((acquirer_id, terminal_id))

    def is_signed_on(self, acquirer_id: str, terminal_id: str) -> bool:
        return (acquirer_id, terminal_id) in self._signed_on

    def __len__(self) -> int:
        return len(self._signed_on)
