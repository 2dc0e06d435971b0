"""A small blocking ISO 8583 client for tests, built on the iso package's codec and framing."""

from __future__ import annotations

import itertools
import random
import socket
from datetime import UTC, datetime, timedelta

from hsm_sim.crypto.mac import iso9797_alg3
from iso.amounts import amount_field, build_original_data
from iso.bill_data import build_bill_data, parse_bill_data
from iso.dialect import decode_message, encode_message, mac_field, mac_input
from iso.framing import BINARY2, FrameDecoder, LengthPrefix, encode_frame

_stans = itertools.count(random.randrange(1, 900000))
_clock = itertools.count(random.randrange(0, 10**6))


def next_stan() -> str:
    return f"{next(_stans) % 999999 + 1:06d}"


def transmission_time() -> str:
    """A DE 7 value; offsets keep retried keys unique across a test run."""
    moment = datetime.now(UTC) - timedelta(seconds=next(_clock) % 86400)
    return moment.strftime("%m%d%H%M%S")


class IsoClient:
    def __init__(
        self,
        port: int,
        prefix: LengthPrefix = BINARY2,
        tpdu: bytes | None = None,
        timeout: float = 10.0,
        host: str = "127.0.0.1",
        mac_key: bytes | None = None,
    ) -> None:
        self.mac_key = mac_key
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.prefix = prefix
        self.tpdu = tpdu
        self.decoder = FrameDecoder(prefix, 65536, tpdu=tpdu is not None)
        self.pending: list = []
        self.last_tpdu: bytes | None = None

    def send(self, fields: dict[str, str]) -> bytes:
        raw = encode_message(with_mac(fields, self.mac_key) if self.mac_key else fields)
        self.sock.sendall(encode_frame(self.prefix, raw, self.tpdu))
        return raw

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_raw(self) -> bytes:
        while not self.pending:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("switch closed the connection")
            self.pending.extend(self.decoder.feed(data))
        frame = self.pending.pop(0)
        self.last_tpdu = frame.tpdu
        return frame.payload

    def recv(self) -> dict[str, str]:
        return decode_message(self.recv_raw())

    def call(self, fields: dict[str, str]) -> dict[str, str]:
        self.send(fields)
        return self.recv()

    def closed_by_peer(self) -> bool:
        """True if the switch closed the connection (reads EOF within the timeout)."""
        try:
            return self.sock.recv(1) == b""
        except (ConnectionResetError, TimeoutError):
            return True

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> IsoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def with_mac(fields: dict[str, str], key: bytes) -> dict[str, str]:
    """``fields`` with an X9.19 MAC (ISO 9797-1 alg 3, padding 1) in DE 64 or 128."""
    signed = {k: v for k, v in fields.items() if k not in ("64", "128")}
    de = mac_field(signed)
    signed[de] = "00" * 8
    raw = encode_message(signed)
    signed[de] = iso9797_alg3(key, mac_input(raw), 1).hex().upper()
    return signed


def mac_ok(raw: bytes, key: bytes) -> bool:
    """Whether an encoded message's last 8 bytes are its X9.19 MAC under ``key``."""
    return iso9797_alg3(key, mac_input(raw), 1) == raw[-8:]


def terminal_fields(terminal: str = "ATM00001", acquirer: str = "100001") -> dict[str, str]:
    fields = {"7": transmission_time(), "11": next_stan(), "32": acquirer}
    if terminal:
        fields["41"] = terminal
    if terminal.startswith("POS"):
        fields["42"] = "AGENT0000000001"
    return fields


def network(code: str, terminal: str = "ATM00001", acquirer: str = "100001") -> dict[str, str]:
    return {"t": "0800", **terminal_fields(terminal, acquirer), "70": code}


def sign_on(client: IsoClient, terminal: str = "ATM00001", acquirer: str = "100001") -> None:
    response = client.call(network("001", terminal, acquirer))
    assert response["39"] == "00", response


def _local(fields: dict[str, str]) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "12": now.strftime("%H%M%S"),
        "13": now.strftime("%m%d"),
        "22": "021",
        "37": f"{random.randrange(10**12):012d}",
        **fields,
    }


def inquiry(
    account: str,
    biller: str = "UTIL01",
    mti: str = "0200",
    terminal: str = "ATM00001",
    acquirer: str = "100001",
    **tags: str,
) -> dict[str, str]:
    return _local(
        {
            "t": mti,
            "3": "310000",
            **terminal_fields(terminal, acquirer),
            "48": build_bill_data({"BL": biller, "AC": account, **tags}),
        }
    )


def payment(
    account: str,
    amount: int,
    biller: str = "UTIL01",
    currency: str = "944",
    mti: str = "0200",
    terminal: str = "ATM00001",
    acquirer: str = "100001",
    **tags: str,
) -> dict[str, str]:
    return _local(
        {
            "t": mti,
            "3": "500000",
            "4": amount_field(amount),
            "49": currency,
            **terminal_fields(terminal, acquirer),
            "48": build_bill_data({"BL": biller, "AC": account, **tags}),
        }
    )


def payer_inquiry(
    code: str, mti: str = "0200", terminal: str = "ATM00001", acquirer: str = "100001"
) -> dict[str, str]:
    """A bill inquiry by payer code: DE 48 PC instead of BL + AC."""
    return _local(
        {
            "t": mti,
            "3": "310000",
            **terminal_fields(terminal, acquirer),
            "48": build_bill_data({"PC": code}),
        }
    )


def payer_payment(
    code: str,
    amount: int,
    currency: str = "944",
    terminal: str = "ATM00001",
    acquirer: str = "100001",
) -> dict[str, str]:
    """A payment by payer code: one DE 4 amount, split by the switch."""
    return _local(
        {
            "t": "0200",
            "3": "500000",
            "4": amount_field(amount),
            "49": currency,
            **terminal_fields(terminal, acquirer),
            "48": build_bill_data({"PC": code}),
        }
    )


def reversal(
    original: dict[str, str],
    mti: str = "0400",
    kept: int | None = None,
) -> dict[str, str]:
    fields = {
        "t": mti,
        "3": original["3"],
        "4": original["4"],
        "49": original["49"],
        **terminal_fields(original.get("41", ""), original["32"]),
        "90": build_original_data(original["t"], original["11"], original["7"], original["32"]),
    }
    if kept is not None:
        fields["95"] = amount_field(kept) + "0" * 30
    return _local(fields)


def reconciliation(
    acquirer: str = "100001", terminal: str = "ATM00001", **totals: str
) -> dict[str, str]:
    return {"t": "0500", **terminal_fields(terminal, acquirer), **totals}


def bill_data(response: dict[str, str]) -> dict[str, str]:
    return parse_bill_data(response.get("48", ""))
