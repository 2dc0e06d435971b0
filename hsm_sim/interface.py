"""The one HSM interface the switch uses, its values and its errors.

The switch never holds a clear PIN or a clear working key: it passes keys as
they are stored (encrypted under the LMK, with their type) and PIN blocks as
they arrive. Two implementations answer this interface: the in-process
``SoftwareHsm`` and the TCP ``PayShieldClient``; which one runs is
configuration only, so both must behave the same (one test suite covers both).

Every operation returns a Deferred, even where the work is done at once, so
that the caller's code is the same for a local and a remote HSM. A
verification that fails is an answer (``False``), not an error; errors are
types carrying the payShield error code, and an HSM that cannot be reached
fails with ``HsmTimeout`` or ``HsmUnavailable`` (the switch answers 96).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol

from twisted.internet.defer import Deferred

# Key type codes (variant + LMK pair code) of the keys the switch uses.
ZMK = "000"
ZPK = "001"
TPK = "002"  # also TMK and PVK: the same LMK pair and variant
TMK = "002"
PVK = "002"
TAK = "003"
ZAK = "008"
CVK = "402"

# The key types each operation accepts: one rule for both implementations.
PIN_KEYS = (TPK, ZPK)  # keys a PIN block may arrive under
PVKS = (PVK,)
PIN_DESTINATIONS = (ZPK,)
MAC_KEYS = (TAK, ZAK)
KEKS = (ZMK, TMK)  # keys a new key may be exported under
ZMKS = (ZMK,)
IMPORTABLE = (ZPK,)  # FA imports ZPKs only
COMPONENT_COUNTS = range(2, 10)  # A4: no one custodian knows the key, at most 9 parts
CVKS = (CVK,)
MAC_LENGTHS = (8, 16)  # hex characters


@dataclass(frozen=True)
class KeyUnderLmk:
    """A key as the switch stores it: type code, value under the LMK, check value.

    ``value`` is in the HSM's notation: 16 hex (single length), or a scheme
    letter and hex ("U" + 32 hex, "T" + 48 hex). ``kcv`` is 6 hex, or empty
    when the caller does not have it (it is never needed for an operation).
    """

    key_type: str
    value: str
    kcv: str = ""

    def __repr__(self) -> str:
        # Encrypted values are not secret, but they are long and useless in logs.
        return f"KeyUnderLmk({self.key_type}, {self.value[:5]}..., kcv={self.kcv})"


@dataclass(frozen=True)
class GeneratedKey:
    """A new key under the LMK, and under the ZMK/TMK it was exported under, if any."""

    under_lmk: KeyUnderLmk
    under_kek: str | None = None


@dataclass(frozen=True)
class PinBlock:
    """An encrypted PIN block (hex) and its payShield format code (01, 05, 47, 48)."""

    value: str
    format_code: str = "01"


@dataclass(frozen=True)
class TranslatedPin:
    """A PIN block under the destination key, and the PIN length the HSM saw."""

    pin_block: PinBlock
    pin_length: int


@dataclass(frozen=True)
class IbmParameters:
    """The card's IBM 3624 values: kept together because they travel together."""

    offset: str  # the PIN offset, left-justified (payShield pads it with F to 12)
    validation_data: str  # 12 characters; "N" stands for the last 5 account digits
    decimalisation: str  # 16 hex/decimal characters
    check_length: int = 4


@dataclass(frozen=True)
class Diagnostics:
    """What NC answers: the LMK's check value (16 hex) and a firmware id (9 chars)."""

    lmk_check_value: str
    firmware: str


class MacAlgorithm(Enum):
    """The M6/M8 algorithm codes."""

    ISO9797_ALG1 = "1"
    ISO9797_ALG3 = "3"  # ANSI X9.19 retail MAC
    CMAC = "6"


class Padding(Enum):
    """ISO 9797-1 padding methods, by their M6/M8 code."""

    NONE = "0"
    METHOD1 = "1"
    METHOD2 = "2"


# ---------------------------------------------------------------- errors


class HsmFailure(Exception):
    """Any failed HSM call. Messages name the problem, never a key, PIN or PAN."""


class HsmError(HsmFailure):
    """The HSM answered with an error code (``code``, as on the wire)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"HSM error {code}" + (f": {detail}" if detail else ""))
        self.code = code
        self.detail = detail


class CodedError(HsmError):
    """An error of the spec's table: the class fixes the code."""

    CODE: ClassVar[str]

    def __init__(self, detail: str = "") -> None:
        super().__init__(self.CODE, detail or (self.__doc__ or "").strip())


class InvalidComponentCount(CodedError):
    """Invalid number of components (a key is formed from 2 to 9)."""

    CODE = "03"


class VerificationFailed(CodedError):
    """Verification failed (verify operations return False instead)."""

    CODE = "01"


class SourceKeyParity(CodedError):
    """Source key parity error."""

    CODE = "10"


class DestinationKeyParity(CodedError):
    """Destination key parity error."""

    CODE = "11"


class NoKeysLoaded(CodedError):
    """No keys loaded."""

    CODE = "12"


class LmkError(CodedError):
    """LMK error."""

    CODE = "13"


class InvalidInput(CodedError):
    """Invalid input data."""

    CODE = "15"


class InvalidPinBlock(CodedError):
    """PIN block not valid."""

    CODE = "20"


class InvalidPinBlockFormat(CodedError):
    """Invalid PIN block format code."""

    CODE = "23"


class PinLengthOutOfRange(CodedError):
    """PIN length out of range."""

    CODE = "24"


class IncompatibleKeyLength(CodedError):
    """Incompatible key length."""

    CODE = "27"


class CommandDisabled(CodedError):
    """Command disabled or not supported."""

    CODE = "68"


class PinBlockFormatDisabled(CodedError):
    """PIN block format disabled."""

    CODE = "69"


class KeyBlockAuthentication(CodedError):
    """Key block authentication failure."""

    CODE = "A4"


ERRORS: dict[str, type[CodedError]] = {
    cls.CODE: cls
    for cls in (
        InvalidComponentCount,
        VerificationFailed,
        SourceKeyParity,
        DestinationKeyParity,
        NoKeysLoaded,
        LmkError,
        InvalidInput,
        InvalidPinBlock,
        InvalidPinBlockFormat,
        PinLengthOutOfRange,
        IncompatibleKeyLength,
        CommandDisabled,
        PinBlockFormatDisabled,
        KeyBlockAuthentication,
    )
}


def error_for(code: str, detail: str = "") -> HsmError:
    """The typed error of a wire error code; a plain HsmError for codes we do not know."""
    cls = ERRORS.get(code)
    return cls(detail) if cls else HsmError(code, detail)


class HsmTimeout(HsmFailure):
    """The HSM did not answer within the call's time limit."""


class HsmUnavailable(HsmFailure):
    """No connection to the HSM could be made, or it was lost with the call in flight."""


class HsmBadResponse(HsmFailure):
    """The HSM answered something that does not follow the protocol."""


def check_key_type(key: KeyUnderLmk, allowed: tuple[str, ...]) -> None:
    """Refuse a key of a type the operation does not take (error 15), before any crypto."""
    if key.key_type not in allowed:
        raise InvalidInput(f"key type {key.key_type} not accepted here")


# ---------------------------------------------------------------- the interface


class Hsm(Protocol):
    """What the switch needs from an HSM. Keys are passed as stored (under the LMK).

    ``pan`` of the PIN operations is the card number (13 to 19 digits) or
    already its 12-digit account number (the 12 rightmost digits without
    the check digit), which is all the HSM uses of it.
    """

    def translate_pin(
        self,
        source: KeyUnderLmk,
        destination: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        destination_format: str = "01",
        max_pin_length: int = 12,
    ) -> Deferred[TranslatedPin]:
        """Re-encrypt a PIN block from a TPK (002) or ZPK (001) to a ZPK (CA / CC)."""
        ...

    def verify_pin_pvv(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        pvki: int,
        pvv: str,
    ) -> Deferred[bool]:
        """Check a PIN block under a TPK or ZPK against a Visa PVV (DC / EC)."""
        ...

    def verify_pin_ibm(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        ibm: IbmParameters,
        max_pin_length: int = 12,
    ) -> Deferred[bool]:
        """Check a PIN block under a TPK or ZPK against an IBM 3624 offset (DA / EA)."""
        ...

    def generate_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        algorithm: MacAlgorithm,
        padding: Padding,
        length: int = 8,
    ) -> Deferred[str]:
        """The MAC (``length`` hex characters, 8 or 16) of ``data`` under a TAK or ZAK (M6)."""
        ...

    def verify_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        mac: str,
        algorithm: MacAlgorithm,
        padding: Padding,
    ) -> Deferred[bool]:
        """Whether ``mac`` (8 or 16 hex) is the MAC of ``data`` (M8)."""
        ...

    def generate_key(
        self,
        key_type: str,
        scheme: str = "U",
        export_under: KeyUnderLmk | None = None,
        export_scheme: str = "X",
    ) -> Deferred[GeneratedKey]:
        """A new random key under the LMK, also under a ZMK (000) or TMK (002) if given (A0)."""
        ...

    def import_key(
        self, key_type: str, zmk: KeyUnderLmk, key_under_zmk: str, scheme: str = "U"
    ) -> Deferred[KeyUnderLmk]:
        """A key received under a ZMK, re-encrypted under the LMK (FA: ZPKs only)."""
        ...

    def key_check_value(self, key: KeyUnderLmk) -> Deferred[str]:
        """The 16-hex check value of a key under the LMK (BU); the first 6 are its KCV."""
        ...

    def form_key(
        self, key_type: str, components: tuple[KeyUnderLmk, ...], scheme: str = "U"
    ) -> Deferred[KeyUnderLmk]:
        """A key from 2 to 9 components, each under the LMK as ``key_type`` (A4).

        The components are XORed inside the HSM and odd parity is forced on the
        result; a component of even parity is refused (10). Clear components
        reach an HSM only at its console (payShield FK/EC), never over the host
        link; only the software HSM, which runs in the operator's process, also
        takes them typed in (``SoftwareHsm.encrypt_component``).
        """
        ...

    def generate_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str
    ) -> Deferred[str]:
        """The 3-digit CVV of a card (CW); ``expiry`` as on the card's track, YYMM."""
        ...

    def verify_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str, cvv: str
    ) -> Deferred[bool]:
        """Whether ``cvv`` is the card's CVV (CY)."""
        ...

    def diagnostics(self) -> Deferred[Diagnostics]:
        """The LMK check value and firmware id (NC): a liveness check for the HSM."""
        ...
