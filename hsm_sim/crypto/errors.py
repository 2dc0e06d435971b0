"""Typed errors of the crypto layer.

The HSM maps each failure to a payShield error code, so callers need to tell
"bad PIN block" (20) and "PIN length out of range" (24) from any other bad
input (15) without parsing messages. All are ``ValueError``s because every one
of them is caused by the caller's data, never by the machine.
"""


class CryptoError(ValueError):
    """Input the crypto functions cannot work with (key length, data length, hex)."""


class PinBlockError(CryptoError):
    """A PIN block (or the PIN/PAN to build one) does not follow its ISO 9564 format."""


class PinLengthError(PinBlockError):
    """The PIN length is outside 4..12, which payShield reports separately (error 24)."""
