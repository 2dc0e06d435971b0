"""Message authentication (DE 64 / DE 128) on channels that require it.

Requests must carry a MAC over every byte from the MTI up to the MAC field,
made with the terminal's TAK (a host link's ZAK); a missing or wrong one gets
63 before anything else happens, so no money moves. The answer to a request
whose MAC verified is MACed under the key that verified it; every other answer
(63, and 03, 12 or 30 decided before the MAC check) goes unMACed: MACing
fields the sender chose, echoed back, under the terminal's key would let
anyone without the key obtain valid MACs (a MAC oracle). All MAC work is done
by the HSM.

A MACed response is encoded once: the MAC covers the encoded bytes, and the
HSM's MAC is then written into those bytes (it is their last field), so the
channel sends them as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hsm_sim.interface import MacAlgorithm, Padding
from iso.dialect import Encoded, encode_message, mac_field, mac_input, with_mac
from iso.errors import IsoFormatError
from switch.errors import SecurityViolation
from switch.security.keystore import owner_of
from switch.services import Services
from switch.transaction import Transaction

ALGORITHMS: dict[str, tuple[MacAlgorithm, Padding]] = {
    "x919": (MacAlgorithm.ISO9797_ALG3, Padding.METHOD1),
    "cmac": (MacAlgorithm.CMAC, Padding.NONE),
}
MAC_KEY = {"ATM": "TAK", "POS": "TAK", "HOST": "ZAK"}
MAC_HEX = 16  # 8 bytes
PLACEHOLDER = "0" * MAC_HEX  # the MAC field while the MAC is computed


class NoMacKey(SecurityViolation):
    """A terminal on a MAC channel without a MAC key: its request cannot be authenticated,
    so it is refused as any unverifiable MAC is (63); the operator must load the key."""

    alert = True


def _owner(t: Transaction) -> str:
    assert t.terminal is not None
    return owner_of(t.terminal.acquirer_id, t.terminal.terminal_id)


async def check_mac(t: Transaction, sv: Services) -> None:
    if t.origin.mac == "none":
        return
    mac = t.request.get("128") or t.request.get("64")
    if not mac:
        raise SecurityViolation("MAC missing")
    keys = sv.keys().usable(_owner(t), MAC_KEY[t.origin.kind], datetime.now(UTC))
    if not keys:
        raise NoMacKey(f"no {MAC_KEY[t.origin.kind]} for {_owner(t)}")
    algorithm, padding = ALGORITHMS[t.origin.mac]
    try:
        data = mac_input(t.raw)
    except IsoFormatError as exc:
        raise SecurityViolation("message too short to carry a MAC") from exc
    for key in keys:
        if await sv.hsm.verify_mac(key, data, mac, algorithm, padding):
            t.mac_key = key  # the answer goes back under the key the terminal used
            return
    raise SecurityViolation("MAC wrong")


async def sign(t: Transaction, sv: Services, response: dict[str, str]) -> dict[str, str] | Encoded:
    """The response with its MAC, fields and bytes, under the key that verified the
    request's MAC; a request whose MAC did not verify gets its answer as it was."""
    key = t.mac_key
    if t.origin.mac == "none" or key is None:
        return response
    fields = {k: v for k, v in response.items() if k not in ("64", "128")}
    de = mac_field(fields)
    fields[de] = PLACEHOLDER
    algorithm, padding = ALGORITHMS[t.origin.mac]
    raw = encode_message(fields)
    fields[de] = await sv.hsm.generate_mac(key, mac_input(raw), algorithm, padding, MAC_HEX)
    return Encoded(fields, with_mac(raw, fields[de]))
