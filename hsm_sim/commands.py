"""The simulator's command layer: a command's bytes in, its response's bytes out.

``dispatch`` decodes a command with the layouts of ``layouts.py``, runs it on
the software HSM's core and encodes the response: response code (the
command's second letter plus one), two-digit error code, then the fields.
Nothing a peer sends makes it raise: a command we do not know gets ``ZZ68``
(``ZZ15`` when its code is not even two letters or digits), a malformed one
its own response code with 15, and a failing operation its error code.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping
from typing import TypeVar

import structlog

from hsm_sim.codec import Fields, decode, encode, key_length
from hsm_sim.interface import (
    CVK,
    PVK,
    TMK,
    TPK,
    ZMK,
    ZPK,
    HsmError,
    IbmParameters,
    IncompatibleKeyLength,
    InvalidInput,
    KeyUnderLmk,
    MacAlgorithm,
    Padding,
    PinBlock,
    VerificationFailed,
)
from hsm_sim.layouts import (
    BU_KEY_TYPES,
    COMMANDS,
    KCV_LENGTHS,
    KEK_FLAGS,
    KEY_LENGTH_FLAGS,
    MAC_SIZES,
    SINGLE_BLOCK_MODE,
    response_code,
)
from hsm_sim.software import HsmCore

log = structlog.get_logger(__name__)

Handler = Callable[[HsmCore, Fields], Fields]
V = TypeVar("V")

UNKNOWN_COMMAND = "ZZ"
COMMAND_CHARACTERS = frozenset(string.ascii_uppercase + string.digits)


def _binary(message: str) -> bytes:
    return message.encode("latin-1")  # the codec's text is the bytes, one to one


def _hex(message: str) -> bytes:
    try:
        return bytes.fromhex(message)
    except ValueError:
        raise InvalidInput("message: not hex") from None


MAC_INPUT_FORMATS: dict[str, Callable[[str], bytes]] = {"0": _binary, "1": _hex}
MAC_ALGORITHMS = {algorithm.value: algorithm for algorithm in MacAlgorithm}
PADDINGS = {padding.value: padding for padding in Padding}
EXPORTS = {"0": False, "1": True}  # A0 mode: 1 also exports under a ZMK/TMK


def _pick(table: Mapping[str, V], value: str, name: str) -> V:
    """A table lookup where an unknown value is invalid input (error 15)."""
    try:
        return table[value]
    except KeyError:
        raise InvalidInput(f"{name}: not supported") from None


def _verified(ok: bool) -> Fields:
    """Verification commands answer 00 or 01 and no fields."""
    if not ok:
        raise VerificationFailed()
    return {}


def _kcv(core: HsmCore, key: KeyUnderLmk, kcv_type: str) -> str:
    return core.key_check_value(key)[: _pick(KCV_LENGTHS, kcv_type, "KCV type")]


# ---------------------------------------------------------------- handlers


def _diagnostics(core: HsmCore, f: Fields) -> Fields:
    d = core.diagnostics()
    return {"lmk_check_value": d.lmk_check_value, "firmware": d.firmware}


def _generate_key(core: HsmCore, f: Fields) -> Fields:
    kek = None
    if _pick(EXPORTS, f["mode"], "mode"):
        kek = KeyUnderLmk(_pick(KEK_FLAGS, f["kek_flag"], "ZMK/TMK flag"), f["kek"])
    key = core.generate_key(f["key_type"].upper(), f["scheme"], kek, f.get("kek_scheme", "X"))
    return {
        "key": key.under_lmk.value,
        "key_under_kek": key.under_kek or "",
        "kcv": key.under_lmk.kcv,
    }


def _form_key(core: HsmCore, f: Fields) -> Fields:
    key_type = f["key_type"].upper()
    count = int(f["count"])
    parts = tuple(KeyUnderLmk(key_type, f[f"component{i}"]) for i in range(1, count + 1))
    key = core.form_key(key_type, parts, f["scheme"])
    return {"key": key.value, "kcv": key.kcv}


def _check_value(core: HsmCore, f: Fields) -> Fields:
    code = f["type_code"].upper()
    key_type = f["key_type"].upper() if code == "FF" else _pick(BU_KEY_TYPES, code, "key type")
    if _pick(KEY_LENGTH_FLAGS, f["length_flag"], "key length flag") != key_length(f["key"]):
        raise IncompatibleKeyLength("key length flag and key disagree")
    return {"kcv": core.key_check_value(KeyUnderLmk(key_type, f["key"]))}


def _import_zpk(core: HsmCore, f: Fields) -> Fields:
    key = core.import_key(ZPK, KeyUnderLmk(ZMK, f["zmk"]), f["key_under_zmk"], f.get("scheme"))
    return {"key": key.value, "kcv": _kcv(core, key, f.get("kcv_type", ""))}


def _terminal_key(core: HsmCore, f: Fields) -> Fields:
    """HC without ";" makes a double-length key (X under the TMK, U under the LMK)."""
    scheme, kek_scheme = f.get("scheme", "U"), f.get("kek_scheme", "X")
    key = core.generate_key(TMK, scheme, KeyUnderLmk(TMK, f["current"]), kek_scheme)
    return {
        "key_under_current": key.under_kek or "",
        "key": key.under_lmk.value,
        "kcv": _kcv(core, key.under_lmk, f.get("kcv_type", "")),
    }


def _translate(source_type: str) -> Handler:
    """CA (from a TPK) and CC (from a ZPK) differ only in the source key's type."""

    def handle(core: HsmCore, f: Fields) -> Fields:
        result = core.translate_pin(
            KeyUnderLmk(source_type, f["source"]),
            KeyUnderLmk(ZPK, f["destination"]),
            PinBlock(f["pin_block"], f["source_format"]),
            f["account"],
            f["destination_format"],
            int(f["max_pin_length"]),
        )
        return {
            "pin_length": f"{result.pin_length:02d}",
            "pin_block": result.pin_block.value,
            "destination_format": result.pin_block.format_code,
        }

    return handle


def _verify_ibm(pin_key_type: str) -> Handler:
    """DA (PIN under a TPK) and EA (under a ZPK)."""

    def handle(core: HsmCore, f: Fields) -> Fields:
        ibm = IbmParameters(
            f["offset"], f["validation_data"], f["decimalisation"], int(f["check_length"])
        )
        return _verified(
            core.verify_pin_ibm(
                KeyUnderLmk(pin_key_type, f["pin_key"]),
                KeyUnderLmk(PVK, f["pvk"]),
                PinBlock(f["pin_block"], f["format"]),
                f["account"],
                ibm,
                int(f["max_pin_length"]),
            )
        )

    return handle


def _verify_pvv(pin_key_type: str) -> Handler:
    """DC (PIN under a TPK) and EC (under a ZPK)."""

    def handle(core: HsmCore, f: Fields) -> Fields:
        return _verified(
            core.verify_pin_pvv(
                KeyUnderLmk(pin_key_type, f["pin_key"]),
                KeyUnderLmk(PVK, f["pvk"]),
                PinBlock(f["pin_block"], f["format"]),
                f["account"],
                int(f["pvki"]),
                f["pvv"],
            )
        )

    return handle


def _generate_cvv(core: HsmCore, f: Fields) -> Fields:
    cvk = KeyUnderLmk(CVK, f["cvk"])
    return {"cvv": core.generate_cvv(cvk, f["pan"], f["expiry"], f["service_code"])}


def _verify_cvv(core: HsmCore, f: Fields) -> Fields:
    cvk = KeyUnderLmk(CVK, f["cvk"])
    return _verified(core.verify_cvv(cvk, f["pan"], f["expiry"], f["service_code"], f["cvv"]))


def _mac_request(f: Fields) -> tuple[KeyUnderLmk, bytes, MacAlgorithm, Padding]:
    """The parts M6 and M8 share, checked against what this HSM supports."""
    if f["mode"] != SINGLE_BLOCK_MODE:
        raise InvalidInput("mode: only single-block messages (0) are supported")
    key_type = f["key_type"].upper()
    data = _pick(MAC_INPUT_FORMATS, f["input_format"], "input format")(f["message"])
    algorithm = _pick(MAC_ALGORITHMS, f["algorithm"], "MAC algorithm")
    padding = _pick(PADDINGS, f["padding"], "padding")
    return KeyUnderLmk(key_type, f["key"]), data, algorithm, padding


def _generate_mac(core: HsmCore, f: Fields) -> Fields:
    key, data, algorithm, padding = _mac_request(f)
    length = _pick(MAC_SIZES, f["mac_size"], "MAC size")
    return {"mac": core.generate_mac(key, data, algorithm, padding, length)}


def _verify_mac(core: HsmCore, f: Fields) -> Fields:
    key, data, algorithm, padding = _mac_request(f)
    if "mac" not in f:
        raise InvalidInput("MAC size: not supported")
    return _verified(core.verify_mac(key, data, f["mac"], algorithm, padding))


HANDLERS: dict[str, Handler] = {
    "NC": _diagnostics,
    "A0": _generate_key,
    "A4": _form_key,
    "BU": _check_value,
    "FA": _import_zpk,
    "HC": _terminal_key,
    "CA": _translate(TPK),
    "CC": _translate(ZPK),
    "DA": _verify_ibm(TPK),
    "EA": _verify_ibm(ZPK),
    "DC": _verify_pvv(TPK),
    "EC": _verify_pvv(ZPK),
    "CW": _generate_cvv,
    "CY": _verify_cvv,
    "M6": _generate_mac,
    "M8": _verify_mac,
}


# ---------------------------------------------------------------- dispatch


def _looks_like_command(code: str) -> bool:
    """Two capital letters or digits: a command we lack (68), not garbage (15)."""
    return len(code) == 2 and set(code) <= COMMAND_CHARACTERS


def dispatch(core: HsmCore, header: bytes, command: bytes) -> bytes:
    """The response frame body (header echoed) to one command; never raises."""
    return header + execute(core, command.decode("latin-1")).encode("latin-1")


def execute(core: HsmCore, text: str) -> str:
    """Response code, error code and fields for one command in text form."""
    code = text[:2]
    if code not in COMMANDS:
        return UNKNOWN_COMMAND + ("68" if _looks_like_command(code) else "15")
    answer = response_code(code)
    try:
        layout = COMMANDS[code]
        fields = decode(layout.request, text[2:])
        reply = HANDLERS[code](core, fields)
        return answer + "00" + encode(layout.response, {**fields, **reply})
    except HsmError as exc:
        return answer + exc.code
    except Exception:  # a bug of ours must cost one answer, not the connection
        log.exception("command failed", command=code)
        return answer + InvalidInput.CODE
