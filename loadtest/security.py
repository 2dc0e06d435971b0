"""What a keyed terminal adds to its messages: an X9.19 MAC, and a PIN block for on-us cards.

The MAC (ISO 9797-1 algorithm 3, padding method 1, double-length TAK) covers
every byte from the MTI up to the MAC field, which is the message's last
field: DE 128 when the message has a secondary bitmap (any field 65-127),
else DE 64. We encode once with a zero MAC and replace its 8 bytes, so
signing costs one encode, as it would on a terminal.

An on-us payment carries the card (DE 2), its PIN block (DE 52, ISO format 0
under the terminal's TPK) and DE 53 naming the format. Format 0 has no random
fill, so the block of one card and PIN is the same every time: built once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hsm_sim.crypto.des import encrypt_ecb
from hsm_sim.crypto.errors import CryptoError
from hsm_sim.crypto.mac import iso9797_alg3
from hsm_sim.crypto.pinblock import make_iso0
from iso.dialect import encode_message, mac_field

MAC_BYTES = 8
MAC_FIELDS = ("64", "128")
PIN_CONTROL_ISO0 = "0100000000000000"  # DE 53: format 01 (ISO 9564 format 0)
MAC_KEY_LENGTHS = (16,)  # X9.19 takes a double-length key
PIN_KEY_LENGTHS = (16, 24)


def parse_key(text: str, lengths: tuple[int, ...]) -> bytes:
    """A DES key given as hex, ``lengths`` bytes long; the message never quotes the key."""
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ValueError("a key is given as hex digits") from None
    if len(key) not in lengths:
        digits = " or ".join(str(2 * n) for n in lengths)
        raise ValueError(f"this key is {digits} hex digits")
    return key


def x919(key: bytes, data: bytes) -> bytes:
    """The X9.19 retail MAC of ``data`` under a double-length key."""
    return iso9797_alg3(key, data, 1)


def signed_message(fields: Mapping[str, str], key: bytes) -> bytes:
    """``fields`` encoded with their MAC in the right field (any MAC given is replaced)."""
    unsigned = {k: v for k, v in fields.items() if k not in MAC_FIELDS}
    unsigned[mac_field(unsigned)] = "00" * MAC_BYTES
    body = encode_message(unsigned)[:-MAC_BYTES]
    return body + x919(key, body)


def mac_ok(raw: bytes, fields: Mapping[str, str], key: bytes) -> bool:
    """Whether a decoded message carries a MAC, in its last 8 bytes, that verifies."""
    if not any(de in fields for de in MAC_FIELDS) or len(raw) <= MAC_BYTES:
        return False
    return x919(key, raw[:-MAC_BYTES]) == raw[-MAC_BYTES:]


@dataclass(frozen=True)
class OnUsCard:
    """The card fields of an on-us payment; ``pin_block`` is hex, ready for DE 52."""

    pan: str
    pin_block: str

    def fields(self) -> dict[str, str]:
        return {"2": self.pan, "52": self.pin_block, "53": PIN_CONTROL_ISO0}


def parse_card(text: str) -> tuple[str, str]:
    """``PAN:PIN`` (argparse ``type``): 13-19 and 4-12 digits."""
    pan, sep, pin = text.partition(":")
    if not sep or not (pan.isdigit() and 13 <= len(pan) <= 19):
        raise ValueError("use PAN:PIN, the PAN 13 to 19 digits")
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("the PIN is 4 to 12 digits")
    return pan, pin


def on_us_card(pan: str, pin: str, tpk: bytes) -> OnUsCard:
    """The card with its ISO format 0 PIN block encrypted under the TPK (3DES ECB)."""
    try:
        block = encrypt_ecb(tpk, make_iso0(pin, pan))
    except CryptoError as exc:
        raise ValueError(f"cannot build the PIN block: {exc}") from None
    return OnUsCard(pan, block.hex().upper())


BIN_DIGITS = 6  # cards derived for --cards stay in the base card's BIN


def luhn_digit(body: str) -> str:
    """The check digit that makes ``body`` + digit pass the Luhn test."""
    total = 0
    for i, char in enumerate(reversed(body)):
        n = int(char) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str(-total % 10)


def card_pans(pan: str, count: int) -> list[str]:
    """``count`` PANs: ``pan`` first, then its successors in the same BIN, each Luhn-valid.

    Deterministic (account part + k, new check digit), so a bench that seeds
    the cards and a later run with the same ``--on-us`` and ``--cards`` agree.
    """
    if count < 1:
        raise ValueError("need at least one card")
    body = pan[:-1]
    pans = [pan]
    k = 0
    while len(pans) < count:
        k += 1
        derived = str(int(body) + k).zfill(len(body))
        if len(derived) != len(body) or derived[:BIN_DIGITS] != pan[:BIN_DIGITS]:
            raise ValueError(f"{count} cards do not fit in the BIN of the --on-us card")
        derived += luhn_digit(derived)
        if derived != pan:
            pans.append(derived)
    return pans


def on_us_cards(pan: str, pin: str, tpk: bytes, count: int = 1) -> tuple[OnUsCard, ...]:
    """``count`` on-us cards sharing one PIN, each with its own PIN block (format 0 has the PAN)."""
    return tuple(on_us_card(p, pin, tpk) for p in card_pans(pan, count))


class ResponseMacs:
    """Response MACs of the measured requests, kept in the window and verified after it.

    Verifying a MAC costs the generator about as much CPU as the switch spends
    making it, and on a shared box that CPU would be taken from the switch under
    measurement. So the window only keeps each response's bytes (a response with
    no MAC field at all fails at once: no crypto needed), and ``verify`` runs
    once the load has stopped. Every response is still checked.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key
        self._kept: list[bytes] = []
        self.checked = 0
        self.failed = 0

    def keep(self, payload: bytes, fields: Mapping[str, str]) -> bool:
        """Keep a response for later; False (counted as failed) when it has no MAC field."""
        if not any(de in fields for de in MAC_FIELDS) or len(payload) <= MAC_BYTES:
            self.checked += 1
            self.failed += 1
            return False
        self._kept.append(bytes(payload))
        return True

    def verify(self) -> None:
        """Check every kept response (after the window); failures add to ``failed``."""
        kept, self._kept = self._kept, []
        for raw in kept:
            self.checked += 1
            if x919(self._key, raw[:-MAC_BYTES]) != raw[-MAC_BYTES:]:
                self.failed += 1

    @property
    def pending(self) -> int:
        """Responses kept and not yet verified."""
        return len(self._kept)
