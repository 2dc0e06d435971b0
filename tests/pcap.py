"""Write framed ISO 8583 exchanges to a pcap file and read them back with tshark.

Wireshark's ISO 8583 dissector is an implementation of the standard we did
not write, so decoding our bytes with it checks the dialect against a second
opinion. The capture is one TCP connection on raw IPv4 (linktype 101, no
Ethernet header) with a handshake, correct sequence numbers and checksums,
so tshark's TCP reassembly hands the dissector clean streams.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

LINKTYPE_RAW = 101
CLIENT = (b"\x7f\x00\x00\x01", 40000)
SERVER_ADDR = b"\x7f\x00\x00\x01"
ISN = {True: 1_000, False: 500_000}  # initial sequence number per direction (client?)

FIN, SYN, PSH, ACK = 0x01, 0x02, 0x08, 0x10

# Preferences of Wireshark's ISO 8583 dissector matching host-interface.md section 2.
TSHARK_PREFS: dict[str, str] = {
    "iso8583.len_endian": "Big endian",
    "iso8583.binencode": "Bin data not encoded",
    "iso8583.charset": "Digits represented as ASCII Characters",
}


def _checksum(data: bytes) -> int:
    """Internet checksum (RFC 1071), so tshark shows no bad-checksum warnings if enabled."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


@dataclass
class _Connection:
    """Sequence-number state of one TCP connection between CLIENT and the server."""

    port: int
    seq: dict[bool, int]

    def packet(self, from_client: bool, flags: int, payload: bytes = b"") -> bytes:
        """One IPv4 packet; advances this side's sequence number past what it sends."""
        src, dst = (CLIENT, (SERVER_ADDR, self.port))[:: 1 if from_client else -1]
        ack = self.seq[not from_client] if flags & ACK else 0
        segment = self._tcp(src, dst, self.seq[from_client], ack, flags, payload)
        self.seq[from_client] += len(payload) + (1 if flags & (SYN | FIN) else 0)
        return self._ip(src[0], dst[0], segment)

    @staticmethod
    def _tcp(
        src: tuple[bytes, int],
        dst: tuple[bytes, int],
        seq: int,
        ack: int,
        flags: int,
        payload: bytes,
    ) -> bytes:
        """TCP header (20 bytes, no options) + payload with a valid checksum."""
        header = struct.pack("!HHIIBBHHH", src[1], dst[1], seq, ack, 5 << 4, flags, 65535, 0, 0)
        pseudo = src[0] + dst[0] + struct.pack("!BBH", 0, 6, len(header) + len(payload))
        checksum = _checksum(pseudo + header + payload)
        return header[:16] + struct.pack("!H", checksum) + header[18:] + payload

    @staticmethod
    def _ip(src: bytes, dst: bytes, segment: bytes) -> bytes:
        """IPv4 header (20 bytes, DF, TTL 64, protocol TCP) with a valid checksum."""
        size = 20 + len(segment)
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 0, 0x4000, 64, 6, 0, src, dst)
        return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + segment


def _packets(exchanges: list[tuple[bytes, bool]], port: int) -> list[bytes]:
    """Handshake, one PSH segment per frame, then an orderly close."""
    conn = _Connection(port, dict(ISN))
    packets = [conn.packet(True, SYN), conn.packet(False, SYN | ACK), conn.packet(True, ACK)]
    for data, from_client in exchanges:
        packets.append(conn.packet(from_client, PSH | ACK, data))
        packets.append(conn.packet(not from_client, ACK))
    packets += [conn.packet(True, FIN | ACK), conn.packet(False, FIN | ACK)]
    packets.append(conn.packet(True, ACK))
    return packets


def write_pcap(path: str | Path, exchanges: list[tuple[bytes, bool]], port: int) -> None:
    """Write a classic libpcap file of one TCP connection 127.0.0.1:40000 <-> :port.

    Each exchange is (framed bytes incl. length prefix, True if client -> server).
    """
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW)]
    for n, packet in enumerate(_packets(exchanges, port)):
        out.append(struct.pack("<IIII", 1_700_000_000, n * 1000, len(packet), len(packet)))
        out.append(packet)
    Path(path).write_bytes(b"".join(out))


# The skip reason of every tshark test: .ci/run looks for it and fails the build.
TSHARK_MISSING = "tshark (Wireshark) not on PATH"


def have_tshark() -> bool:
    """Tests skip (with ``TSHARK_MISSING``) where Wireshark is not installed; CI fails then."""
    return shutil.which("tshark") is not None


def _tshark(path: str | Path, port: int, *args: str) -> str:
    """Run tshark on ``path`` with port ``port`` decoded as ISO 8583."""
    prefs = [arg for key, value in TSHARK_PREFS.items() for arg in ("-o", f"{key}:{value}")]
    cmd = ["tshark", "-n", "-r", str(path), "-d", f"tcp.port=={port},iso8583", *prefs, *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    return result.stdout


def tshark_decode(path: str | Path, port: int) -> str:
    """Full dissection (-V) of every packet, as text."""
    return _tshark(path, port, "-V")


# Data elements tshark is asked for: every one Wireshark knows except the bitmaps.
_BITS = [bit for bit in range(2, 129) if bit != 65]


def tshark_fields(path: str | Path, port: int) -> list[dict[str, str]]:
    """One dict per ISO 8583 message, keyed like ``decode_message``: "t" and DE numbers.

    Only fields present are included. Each message must sit in its own TCP
    segment (``write_pcap`` does that): values are taken from the first
    occurrence per packet.
    """
    names = ["iso8583.mti", *(f"iso8583.bit{bit}" for bit in _BITS)]
    keys = ["t", *(str(bit) for bit in _BITS)]
    columns = [arg for name in names for arg in ("-e", name)]
    text = _tshark(path, port, "-Y", "iso8583", "-T", "fields", "-E", "occurrence=f", *columns)
    return [_row(keys, line) for line in text.splitlines() if line.strip()]


def _row(keys: list[str], line: str) -> dict[str, str]:
    """Map a tab-separated fields line to keys, dropping absent (empty) fields."""
    return {key: value for key, value in zip(keys, line.split("\t"), strict=False) if value}
