"""The payShield host commands of the spec, as data: request and response layouts.

One table serves both ends: the simulator decodes requests with it and
encodes responses, the client the other way round. The layouts follow the
payShield 9000 host command reference as narrowed by
``hsm-protocol.md``; field names are the keys of the decoded dictionaries.
Response layouts list the fields after the error code, present only when
the error code is 00.
"""

from __future__ import annotations

from dataclasses import dataclass

from hsm_sim.codec import (
    Counted,
    Data,
    Delimited,
    Digits,
    Hex,
    Key,
    Layout,
    Literal,
    Text,
    Until,
    When,
)
from hsm_sim.interface import TAK, TMK, TPK, ZAK, ZMK, ZPK


@dataclass(frozen=True)
class CommandLayout:
    request: Layout
    response: Layout
    purpose: str


def response_code(command: str) -> str:
    """The response code: the command's second letter plus one (A0 -> A1, NC -> ND)."""
    return command[0] + chr(ord(command[1]) + 1)


# Codes of the protocol, by field.
KEK_FLAGS = {"0": ZMK, "1": TMK}  # A0's ZMK/TMK flag
KCV_LENGTHS = {"": 16, "0": 16, "1": 6}  # KCV type -> hex characters
BU_KEY_TYPES = {"00": ZMK, "01": ZPK, "02": TPK, "03": TAK, "08": ZAK}  # FF: given after ";"
KEY_LENGTH_FLAGS = {"0": 8, "1": 16, "2": 24}  # BU: single, double, triple (bytes)
MAC_SIZES = {"0": 8, "1": 16}  # hex characters
SINGLE_BLOCK_MODE = "0"  # the only M6/M8 mode here: a whole message in one command
TRANSLATE_COMMANDS = {TPK: "CA", ZPK: "CC"}  # by the source key's type
VERIFY_IBM_COMMANDS = {TPK: "DA", ZPK: "EA"}  # by the PIN key's type
VERIFY_PVV_COMMANDS = {TPK: "DC", ZPK: "EC"}


# KCV type 0 (or none given): 16 hex; 1: 6 hex.
_KCV_16_OR_6 = (
    When("kcv_type", ("", "0"), (Hex("kcv", 16),)),
    When("kcv_type", ("1",), (Hex("kcv", 6),)),
)
_KEY_TAIL = Delimited(
    ";", (Text("kek_scheme", 1), Text("scheme", 1), Digits("kcv_type", 1)), "kcv_type"
)
_MAC_BY_SIZE = (
    When("mac_size", ("0",), (Hex("mac", 8),)),
    When("mac_size", ("1",), (Hex("mac", 16),)),
)
_TRANSLATE = (
    Key("source"),
    Key("destination"),
    Digits("max_pin_length", 2),
    Hex("pin_block", 16),
    Digits("source_format", 2),
    Digits("destination_format", 2),
    Digits("account", 12),
)
_TRANSLATED = (Digits("pin_length", 2), Hex("pin_block", 16), Digits("destination_format", 2))
_VERIFY_IBM = (
    Key("pin_key"),
    Key("pvk"),
    Digits("max_pin_length", 2),
    Hex("pin_block", 16),
    Digits("format", 2),
    Digits("check_length", 2),
    Digits("account", 12),
    Hex("decimalisation", 16),
    Text("validation_data", 12),
    Hex("offset", 12),
)
_VERIFY_PVV = (
    Key("pin_key"),
    Key("pvk", pair=True),
    Hex("pin_block", 16),
    Digits("format", 2),
    Digits("account", 12),
    Digits("pvki", 1),
    Digits("pvv", 4),
)
_CARD = (Until("pan", ";", 19), Literal(";"), Digits("expiry", 4), Digits("service_code", 3))
_MAC_REQUEST = (
    Digits("mode", 1),
    Digits("input_format", 1),
    Digits("mac_size", 1),
    Digits("algorithm", 1),
    Digits("padding", 1),
    Hex("key_type", 3),
    Key("key"),
    Data("message"),
)

COMMANDS: dict[str, CommandLayout] = {
    "NC": CommandLayout((), (Hex("lmk_check_value", 16), Text("firmware", 9)), "diagnostics"),
    "A0": CommandLayout(
        (
            Digits("mode", 1),
            Hex("key_type", 3),
            Text("scheme", 1),
            When(
                "mode",
                ("1",),
                (Literal(";"), Digits("kek_flag", 1), Key("kek"), Text("kek_scheme", 1)),
            ),
        ),
        (Key("key"), When("mode", ("1",), (Key("key_under_kek"),)), Hex("kcv", 6)),
        "generate a key",
    ),
    "A4": CommandLayout(
        (
            Digits("count", 1),
            Hex("key_type", 3),
            Text("scheme", 1),
            Counted("count", "component"),
        ),
        (Key("key"), Hex("kcv", 6)),
        "form a key from components under the LMK",
    ),
    "BU": CommandLayout(
        (
            Hex("type_code", 2),
            Digits("length_flag", 1),
            Key("key"),
            When("type_code", ("FF", "ff"), (Literal(";"), Hex("key_type", 3))),
        ),
        (Hex("kcv", 16),),
        "key check value",
    ),
    "FA": CommandLayout(
        (Key("zmk"), Key("key_under_zmk"), _KEY_TAIL),
        (Key("key"), *_KCV_16_OR_6),
        "import a ZPK received under a ZMK",
    ),
    "HC": CommandLayout(
        (Key("current"), _KEY_TAIL),
        (Key("key_under_current"), Key("key"), *_KCV_16_OR_6),
        "new TPK/TMK for a terminal",
    ),
    "CA": CommandLayout(_TRANSLATE, _TRANSLATED, "translate a PIN block TPK -> ZPK"),
    "CC": CommandLayout(_TRANSLATE, _TRANSLATED, "translate a PIN block ZPK -> ZPK"),
    "DA": CommandLayout(_VERIFY_IBM, (), "verify a PIN under a TPK, IBM 3624 offset"),
    "EA": CommandLayout(_VERIFY_IBM, (), "verify a PIN under a ZPK, IBM 3624 offset"),
    "DC": CommandLayout(_VERIFY_PVV, (), "verify a PIN under a TPK, Visa PVV"),
    "EC": CommandLayout(_VERIFY_PVV, (), "verify a PIN under a ZPK, Visa PVV"),
    "CW": CommandLayout((Key("cvk", pair=True), *_CARD), (Digits("cvv", 3),), "generate a CVV"),
    "CY": CommandLayout((Key("cvk", pair=True), Digits("cvv", 3), *_CARD), (), "verify a CVV"),
    "M6": CommandLayout(_MAC_REQUEST, _MAC_BY_SIZE, "generate a MAC"),
    "M8": CommandLayout((*_MAC_REQUEST, *_MAC_BY_SIZE), (), "verify a MAC"),
}
