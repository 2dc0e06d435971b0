"""The software HSM: the interface's operations done in-process under an LMK set.

``HsmCore`` does the work synchronously (the simulator's command layer needs
an answer at once); ``SoftwareHsm`` is the interface over it. Each operation
is a few DES blocks, microseconds of CPU, so ``SoftwareHsm`` answers with
Deferreds that have already fired: a hop to a thread pool would cost more
than the work and would reorder nothing.

Keys arrive encrypted under the LMK and are decrypted only inside a call;
nothing clear outlives it. Failures of the crypto layer become the typed
errors of the interface here, at one boundary.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from twisted.internet.defer import Deferred, fail, succeed

from hsm_sim.crypto import cvv, des, engine, kcv, lmk, pin_verify, pinblock
from hsm_sim.crypto.engine import WorkingKey
from hsm_sim.crypto.errors import CryptoError, PinBlockError, PinLengthError
from hsm_sim.interface import (
    COMPONENT_COUNTS,
    CVKS,
    IMPORTABLE,
    KEKS,
    MAC_KEYS,
    MAC_LENGTHS,
    PIN_DESTINATIONS,
    PIN_KEYS,
    PVKS,
    ZMKS,
    CodedError,
    DestinationKeyParity,
    Diagnostics,
    GeneratedKey,
    HsmError,
    IbmParameters,
    IncompatibleKeyLength,
    InvalidComponentCount,
    InvalidInput,
    InvalidPinBlock,
    InvalidPinBlockFormat,
    KeyUnderLmk,
    MacAlgorithm,
    Padding,
    PinBlock,
    PinBlockFormatDisabled,
    PinLengthOutOfRange,
    SourceKeyParity,
    TranslatedPin,
    check_key_type,
)

P = ParamSpec("P")
T = TypeVar("T")

FIRMWARE = "BSHSM-1.0"  # 9 characters, as NC answers

# Scheme under the LMK -> clear key length.
LMK_SCHEMES = {"Z": 8, "U": 16, "T": 24}
# Scheme of a key under a ZMK/TMK (X9.17: ECB, no variant) -> (clear length, prefix).
KEK_SCHEMES = {"Z": (8, ""), "X": (16, "X"), "Y": (24, "Y")}
# The LMK scheme of an imported key, from its length.
SCHEME_FOR_LENGTH = {8: "Z", 16: "U", 24: "T"}

# Crypto failures -> interface errors, most specific first. PIN block problems
# keep no detail: it would describe the clear PIN field (its length, its digits).
_CRYPTO_ERRORS: tuple[tuple[type[Exception], type[CodedError], bool], ...] = (
    (PinLengthError, PinLengthOutOfRange, False),
    (PinBlockError, InvalidPinBlock, False),
    (CryptoError, InvalidInput, True),
    (ValueError, InvalidInput, True),
)


def _hsm_errors(method: Callable[P, T]) -> Callable[P, T]:
    """Let only interface errors out of a core operation."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(*args, **kwargs)
        except HsmError:
            raise
        except ValueError as exc:
            raise _as_hsm_error(exc) from None

    return wrapper


def _as_hsm_error(exc: ValueError) -> HsmError:
    for crypto_type, error_type, keep_detail in _CRYPTO_ERRORS:
        if isinstance(exc, crypto_type):
            return error_type(str(exc)) if keep_detail else error_type()
    return InvalidInput()  # unreachable: ValueError is the last row


def account_number(pan: str) -> str:
    """The 12-digit account number of a PAN; 12 digits are taken as one already."""
    if len(pan) == 12 and pan.isascii() and pan.isdigit():
        return pan
    try:
        return pinblock.pan_digits_12(pan)
    except PinBlockError:
        raise InvalidInput("PAN must be 13 to 19 digits (or a 12-digit account)") from None


def _stand_in_pan(account: str) -> str:
    """A PAN whose account field is ``account``: the PIN block functions take a PAN.

    The check digit is not part of any PIN block or PVV, so a 0 stands in.
    """
    return account + "0"


@dataclass(frozen=True)
class _PinFormat:
    """How to read a PIN from a clear block and build one (PAN as the functions take it)."""

    read: Callable[[bytes, str], str]
    make: Callable[[str, str], bytes]


def _read_iso1(block: bytes, _pan: str) -> str:
    return pinblock.read_iso1(block)  # format 1 carries no account


def _make_iso1(pin: str, _pan: str) -> bytes:
    return pinblock.make_iso1(pin)


def _make_iso3(pin: str, pan: str) -> bytes:
    return pinblock.make_iso3(pin, pan)  # random fill


PIN_FORMATS = {
    "01": _PinFormat(pinblock.read_iso0, pinblock.make_iso0),
    "05": _PinFormat(_read_iso1, _make_iso1),
    "47": _PinFormat(pinblock.read_iso3, _make_iso3),
}

# The formats enabled unless the HSM is told otherwise: ISO 0 and ISO 3, which bind
# the PIN to the PAN (the formats of the host spec). ISO 1 (05) carries no PAN, so
# its block fits any card; it is disabled (error 69, as payShield answers a format
# its security settings disable) and is enabled only explicitly
# (``HsmCore(pin_formats=...)``, for a partner that still sends it).
DEFAULT_PIN_FORMATS = frozenset({"01", "47"})

# PCI PIN Security Requirement 3-3, the translations a PCI-configured HSM allows:
# from a PAN-bound format (ISO 0, 3, 4) only to a PAN-bound one, never to ISO 1;
# from ISO 1 to any. The PAN cannot change: CA and CC take one account number.
PAN_BOUND = frozenset({"01", "47", "48"})
TRANSLATIONS = {
    "01": PAN_BOUND,
    "47": PAN_BOUND,
    "48": PAN_BOUND,
    "05": PAN_BOUND | {"05"},
}


MAC_FUNCTIONS: dict[MacAlgorithm, engine.MacFunction] = {
    MacAlgorithm.ISO9797_ALG1: engine.iso9797_alg1,
    MacAlgorithm.ISO9797_ALG3: engine.iso9797_alg3,
    MacAlgorithm.CMAC: engine.des_cmac,  # pads by its own rule
}


def _equal(a: str, b: str) -> bool:
    """Constant-time comparison of verification values (no timing oracle on PVV/CVV/MAC)."""
    return hmac.compare_digest(a.upper().encode(), b.upper().encode())


class HsmCore:
    """The operations, synchronous, raising interface errors.

    Like a hardware HSM it keeps recently used working keys decrypted in its own
    memory (never outside it): unwrapping a key under the LMK on every command
    was half of its cost per payment. With each key it keeps its cipher
    contexts (``engine.WorkingKey``): building those was most of the rest.
    Not thread-safe: one thread (the reactor's) runs it.
    """

    KEY_CACHE = 4096

    def __init__(
        self,
        lmk_set: lmk.LmkSet = lmk.TEST_LMK,
        pin_formats: frozenset[str] = DEFAULT_PIN_FORMATS,
    ) -> None:
        if not pin_formats <= PIN_FORMATS.keys():
            raise ValueError(f"PIN block formats this HSM can read: {sorted(PIN_FORMATS)}")
        self._lmk = lmk_set
        self._pin_formats = pin_formats
        self._unwrapped: OrderedDict[tuple[str, str], WorkingKey] = OrderedDict()

    # ------------------------------------------------------------ keys

    def _key(
        self, key: KeyUnderLmk, allowed: tuple[str, ...], parity: type[CodedError] = SourceKeyParity
    ) -> WorkingKey:
        """The clear key behind ``key``, refusing a type the operation does not take."""
        check_key_type(key, allowed)
        at = (key.key_type, key.value)
        cached = self._unwrapped.get(at)
        if cached is not None:
            self._unwrapped.move_to_end(at)
            return cached
        clear = lmk.decrypt_key(self._lmk, key.key_type, key.value)
        if not des.has_odd_parity(clear):
            raise parity()
        working = self._unwrapped[at] = WorkingKey(clear)
        if len(self._unwrapped) > self.KEY_CACHE:
            self._unwrapped.popitem(last=False)
        return working

    def _clear(
        self, key: KeyUnderLmk, allowed: tuple[str, ...], parity: type[CodedError] = SourceKeyParity
    ) -> bytes:
        """The clear bytes only, for operations that run too rarely to keep contexts."""
        return self._key(key, allowed, parity).clear

    def _under_lmk(self, key_type: str, clear: bytes, scheme: str) -> KeyUnderLmk:
        value = lmk.encrypt_key(self._lmk, key_type, clear, scheme)
        return KeyUnderLmk(key_type, value, kcv.kcv_des(clear)[:3].hex().upper())

    @_hsm_errors
    def diagnostics(self) -> Diagnostics:
        return Diagnostics(lmk.lmk_check_value(self._lmk), FIRMWARE)

    @_hsm_errors
    def generate_key(
        self,
        key_type: str,
        scheme: str = "U",
        export_under: KeyUnderLmk | None = None,
        export_scheme: str = "X",
    ) -> GeneratedKey:
        if key_type not in lmk.KEY_TYPES or scheme not in LMK_SCHEMES:
            raise InvalidInput("unknown key type or key scheme")
        clear = des.fix_parity(secrets.token_bytes(LMK_SCHEMES[scheme]))
        under_kek = None
        if export_under is not None:
            kek = self._clear(export_under, KEKS)
            under_kek = _wrap(kek, clear, export_scheme)
        return GeneratedKey(self._under_lmk(key_type, clear, scheme), under_kek)

    @_hsm_errors
    def import_key(
        self, key_type: str, zmk: KeyUnderLmk, key_under_zmk: str, scheme: str | None = None
    ) -> KeyUnderLmk:
        if key_type not in IMPORTABLE:
            raise InvalidInput("only a ZPK can be imported")
        clear = _unwrap(self._clear(zmk, ZMKS), key_under_zmk)
        if not des.has_odd_parity(clear):
            raise DestinationKeyParity()
        scheme = scheme or SCHEME_FOR_LENGTH[len(clear)]
        if LMK_SCHEMES.get(scheme) != len(clear):
            raise IncompatibleKeyLength(f"scheme {scheme} for a {len(clear)}-byte key")
        return self._under_lmk(key_type, clear, scheme)

    @_hsm_errors
    def key_check_value(self, key: KeyUnderLmk) -> str:
        return kcv.kcv_des(self._clear(key, tuple(lmk.KEY_TYPES))).hex().upper()

    @_hsm_errors
    def encrypt_component(self, key_type: str, clear: bytes) -> KeyUnderLmk:
        """A clear key component under the LMK, with its KCV (the console's EC command).

        Only the in-process HSM offers this: the clear component is typed into the
        process that holds the LMK. Parity is forced (it is not part of the key).
        """
        if key_type not in lmk.KEY_TYPES or len(clear) not in SCHEME_FOR_LENGTH:
            raise InvalidInput("unknown key type or component length")
        return self._under_lmk(key_type, des.fix_parity(clear), SCHEME_FOR_LENGTH[len(clear)])

    @_hsm_errors
    def form_key(
        self, key_type: str, components: tuple[KeyUnderLmk, ...], scheme: str = "U"
    ) -> KeyUnderLmk:
        """A4: components are unwrapped here only, never cached with the working keys."""
        if len(components) not in COMPONENT_COUNTS:
            raise InvalidComponentCount()
        if key_type not in lmk.KEY_TYPES or scheme not in LMK_SCHEMES:
            raise InvalidInput("unknown key type or key scheme")
        clear = bytes(LMK_SCHEMES[scheme])
        for component in components:
            check_key_type(component, (key_type,))
            part = lmk.decrypt_key(self._lmk, key_type, component.value)
            if not des.has_odd_parity(part):
                raise SourceKeyParity("component parity error")
            if len(part) != len(clear):
                raise IncompatibleKeyLength(f"scheme {scheme} for a {len(part)}-byte component")
            clear = bytes(a ^ b for a, b in zip(clear, part, strict=True))
        return self._under_lmk(key_type, des.fix_parity(clear), scheme)

    # ------------------------------------------------------------ PINs

    def _pin_format(self, code: str) -> _PinFormat:
        """An enabled format. ISO 1 is disabled unless enabled; ISO 4 (48) always is: it
        needs an AES key, which a variant LMK cannot hold. An unknown code is error 23."""
        if code in self._pin_formats:
            return PIN_FORMATS[code]
        if code in pinblock.FORMAT_CODES:
            raise PinBlockFormatDisabled(f"format {code}")
        raise InvalidPinBlockFormat(f"format {code}")

    def _translation(self, source: str, destination: str) -> _PinFormat:
        """The destination format, if both are enabled and PCI PIN 3-3 allows the step."""
        self._pin_format(source)
        make = self._pin_format(destination)
        if destination not in TRANSLATIONS[source]:
            raise PinBlockFormatDisabled(f"format {source} to {destination}")
        return make

    def _pin(self, key: WorkingKey, pin_block: PinBlock, account: str, max_length: int = 12) -> str:
        """The PIN inside a block encrypted under ``key``; never leaves this module."""
        fmt = self._pin_format(pin_block.format_code)
        block = bytes.fromhex(pin_block.value)
        if len(block) != des.BLOCK:
            raise InvalidPinBlock("PIN block must be 16 hex")
        pin = fmt.read(key.engine.decrypt_ecb(block), _stand_in_pan(account))
        if len(pin) > max_length:
            raise PinLengthOutOfRange()
        return pin

    @_hsm_errors
    def translate_pin(
        self,
        source: KeyUnderLmk,
        destination: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        destination_format: str = "01",
        max_pin_length: int = 12,
    ) -> TranslatedPin:
        account = account_number(pan)
        source_key = self._key(source, PIN_KEYS)
        destination_key = self._key(destination, PIN_DESTINATIONS, DestinationKeyParity)
        make = self._translation(pin_block.format_code, destination_format).make
        pin = self._pin(source_key, pin_block, account, max_pin_length)
        block = destination_key.engine.encrypt_ecb(make(pin, _stand_in_pan(account)))
        return TranslatedPin(PinBlock(block.hex().upper(), destination_format), len(pin))

    @_hsm_errors
    def verify_pin_pvv(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        pvki: int,
        pvv: str,
    ) -> bool:
        account = account_number(pan)
        pin = self._pin(self._key(pin_key, PIN_KEYS), pin_block, account)
        pvk_key = self._key(pvk, PVKS, DestinationKeyParity)
        if len(pvk_key.clear) != 16:
            raise InvalidInput(f"PVK must be a 16-byte key pair, not {len(pvk_key.clear)} bytes")
        encrypt = pvk_key.engine.encrypt_ecb
        expected = pin_verify.visa_pvv_with(encrypt, _stand_in_pan(account), str(pvki), pin)
        return _equal(expected, pvv)

    @_hsm_errors
    def verify_pin_ibm(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        ibm: IbmParameters,
        max_pin_length: int = 12,
    ) -> bool:
        account = account_number(pan)
        pin = self._pin(self._key(pin_key, PIN_KEYS), pin_block, account, max_pin_length)
        pvk_clear = self._clear(pvk, PVKS, DestinationKeyParity)
        return pin_verify.ibm3624_verify(
            pvk_clear,
            pin,
            ibm.offset.upper().rstrip("F"),
            validation_block(ibm.validation_data, account),
            ibm.decimalisation,
            ibm.check_length,
        )

    # ------------------------------------------------------------ MACs and CVVs

    def _mac(self, key: KeyUnderLmk, data: bytes, algorithm: MacAlgorithm, padding: Padding) -> str:
        working = self._key(key, MAC_KEYS)
        return MAC_FUNCTIONS[algorithm](working, data, int(padding.value)).hex().upper()

    @_hsm_errors
    def generate_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        algorithm: MacAlgorithm,
        padding: Padding,
        length: int = 8,
    ) -> str:
        if length not in MAC_LENGTHS:
            raise InvalidInput("MAC length must be 8 or 16 hex")
        return self._mac(key, data, algorithm, padding)[:length]

    @_hsm_errors
    def verify_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        mac_value: str,
        algorithm: MacAlgorithm,
        padding: Padding,
    ) -> bool:
        if len(mac_value) not in MAC_LENGTHS:
            raise InvalidInput("MAC must be 8 or 16 hex")
        return _equal(self._mac(key, data, algorithm, padding)[: len(mac_value)], mac_value)

    @_hsm_errors
    def generate_cvv(self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str) -> str:
        return cvv.visa_cvv(self._clear(cvk, CVKS), pan, expiry, service_code)

    @_hsm_errors
    def verify_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str, cvv_value: str
    ) -> bool:
        expected = cvv.visa_cvv(self._clear(cvk, CVKS), pan, expiry, service_code)
        return _equal(expected, cvv_value)


def validation_block(validation_data: str, account: str) -> str:
    """IBM validation data as a 16-hex block: "N" becomes the account's last 5 digits.

    payShield takes 12 characters so that one "N" makes 16; shorter results
    are padded on the right with F.
    """
    return validation_data.upper().replace("N", account[-5:], 1).ljust(16, "F")


def _wrap(kek: bytes, clear: bytes, scheme: str) -> str:
    """``clear`` under a ZMK/TMK, X9.17: each 8-byte part ECB, no variant."""
    length, prefix = KEK_SCHEMES.get(scheme, (0, ""))
    if length != len(clear):
        raise IncompatibleKeyLength(f"scheme {scheme} for a {len(clear)}-byte key")
    return prefix + des.encrypt_ecb(kek, clear).hex().upper()


def _unwrap(kek: bytes, value: str) -> bytes:
    """The clear key behind a key under a ZMK (X, Y, or 16 hex single length)."""
    prefix = value[:1].upper() if value[:1].upper() in ("X", "Y", "Z") else ""
    scheme = prefix or "Z"
    body = bytes.fromhex(value[len(prefix) :])
    if KEK_SCHEMES[scheme][0] != len(body):
        raise InvalidInput(f"key under ZMK: wrong length for scheme {scheme}")
    return des.decrypt_ecb(kek, body)


def _fired(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> Deferred[T]:
    """The result of a synchronous call as a Deferred that has already fired (or failed).

    ``maybeDeferred`` would do, but it checks for coroutines and Deferreds that a
    core operation never returns, on every call.
    """
    try:
        result = call(*args, **kwargs)
    except Exception:
        return fail()
    return succeed(result)


class SoftwareHsm:
    """The HSM interface in-process: the default HSM, and the reference in the tests."""

    def __init__(
        self,
        lmk_set: lmk.LmkSet = lmk.TEST_LMK,
        pin_formats: frozenset[str] = DEFAULT_PIN_FORMATS,
    ) -> None:
        self.core = HsmCore(lmk_set, pin_formats)

    def translate_pin(
        self,
        source: KeyUnderLmk,
        destination: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        destination_format: str = "01",
        max_pin_length: int = 12,
    ) -> Deferred[TranslatedPin]:
        return _fired(
            self.core.translate_pin,
            source,
            destination,
            pin_block,
            pan,
            destination_format,
            max_pin_length,
        )

    def verify_pin_pvv(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        pvki: int,
        pvv: str,
    ) -> Deferred[bool]:
        return _fired(self.core.verify_pin_pvv, pin_key, pvk, pin_block, pan, pvki, pvv)

    def verify_pin_ibm(
        self,
        pin_key: KeyUnderLmk,
        pvk: KeyUnderLmk,
        pin_block: PinBlock,
        pan: str,
        ibm: IbmParameters,
        max_pin_length: int = 12,
    ) -> Deferred[bool]:
        return _fired(self.core.verify_pin_ibm, pin_key, pvk, pin_block, pan, ibm, max_pin_length)

    def generate_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        algorithm: MacAlgorithm,
        padding: Padding,
        length: int = 8,
    ) -> Deferred[str]:
        return _fired(self.core.generate_mac, key, data, algorithm, padding, length)

    def verify_mac(
        self,
        key: KeyUnderLmk,
        data: bytes,
        mac: str,
        algorithm: MacAlgorithm,
        padding: Padding,
    ) -> Deferred[bool]:
        return _fired(self.core.verify_mac, key, data, mac, algorithm, padding)

    def generate_key(
        self,
        key_type: str,
        scheme: str = "U",
        export_under: KeyUnderLmk | None = None,
        export_scheme: str = "X",
    ) -> Deferred[GeneratedKey]:
        return _fired(self.core.generate_key, key_type, scheme, export_under, export_scheme)

    def import_key(
        self, key_type: str, zmk: KeyUnderLmk, key_under_zmk: str, scheme: str | None = None
    ) -> Deferred[KeyUnderLmk]:
        return _fired(self.core.import_key, key_type, zmk, key_under_zmk, scheme)

    def key_check_value(self, key: KeyUnderLmk) -> Deferred[str]:
        return _fired(self.core.key_check_value, key)

    def form_key(
        self, key_type: str, components: tuple[KeyUnderLmk, ...], scheme: str = "U"
    ) -> Deferred[KeyUnderLmk]:
        return _fired(self.core.form_key, key_type, components, scheme)

    def encrypt_component(self, key_type: str, clear: bytes) -> Deferred[KeyUnderLmk]:
        """Not part of the interface: a TCP HSM takes clear components only at its console."""
        return _fired(self.core.encrypt_component, key_type, clear)

    def generate_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str
    ) -> Deferred[str]:
        return _fired(self.core.generate_cvv, cvk, pan, expiry, service_code)

    def verify_cvv(
        self, cvk: KeyUnderLmk, pan: str, expiry: str, service_code: str, cvv: str
    ) -> Deferred[bool]:
        return _fired(self.core.verify_cvv, cvk, pan, expiry, service_code, cvv)

    def diagnostics(self) -> Deferred[Diagnostics]:
        return _fired(self.core.diagnostics)
