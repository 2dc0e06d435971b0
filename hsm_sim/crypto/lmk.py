"""The variant Local Master Key (LMK) of a payShield HSM.

A variant LMK is 20 double-length DES keys, pairs 00-01 .. 38-39. Working
keys leave the HSM only encrypted under one pair, chosen by the key type,
so a key can never be presented to the HSM as a key of another type.

How a key is encrypted (facts from public sources; see the tests for the
vectors that pin them down):

* A key type code is ``VPP``: variant ``V`` and LMK code ``PP`` (00 = pair
  04-05, 01 = 06-07, 02 = 14-15, ...) -- the spec's table, also in the HSM
  Guide (github.com/snowch/hsm-guide, "Key Types").
* Variant ``V`` (1..9) is one of A6 5A 6A DE 2B 50 74 9C FA and is XORed into
  the *first byte* of the LMK pair (ThalesSim ``LmkStorage.LmkVariant`` and
  ``Variants``, github.com/nickntg/thalessimulatorlibrary; the same table in
  rkbalgi/libiso ``hsm`` package).
* Scheme U (double length): the key's left half is encrypted under the pair
  with A6 XORed into the first byte of the pair's *right* key, the right
  half with 5A there; scheme T (triple) uses 6A, DE, 2B for its thirds
  (ThalesSim ``HexKey.EncryptVariant``; spec "Key schemes").
* Single-length keys (scheme Z or none) and the ANSI schemes X / Y are the
  key encrypted ECB under the variant pair with no scheme variant.
"""

import secrets
from dataclasses import dataclass
from pathlib import Path

from hsm_sim.crypto.des import decrypt_ecb, encrypt_ecb, fix_parity
from hsm_sim.crypto.errors import CryptoError
from hsm_sim.crypto.kcv import kcv_des

PAIR_COUNT = 20
VARIANTS = (0x00, 0xA6, 0x5A, 0x6A, 0xDE, 0x2B, 0x50, 0x74, 0x9C, 0xFA)
SCHEME_VARIANTS = {"U": (0xA6, 0x5A), "T": (0x6A, 0xDE, 0x2B)}
_PLAIN_LENGTHS = {"": 8, "Z": 8, "X": 16, "Y": 24}
_SCHEME_BY_HEX_LENGTH = {16: "", 32: "X", 48: "Y"}
_SCHEME_LETTERS = ("U", "T", "X", "Y", "Z")
_HEX_DIGITS = frozenset("0123456789ABCDEF")

# LMK code PP -> index into LmkSet.pairs (index i holds pair 2i-(2i+1)).
LMK_CODES = {
    "00": 2, "01": 3, "02": 7, "03": 8, "04": 9, "05": 10, "06": 11, "07": 12,
    "08": 13, "09": 14, "0A": 15, "0B": 16, "0C": 17, "0D": 18, "0E": 19,
}  # fmt: skip


def _key_type(variant: int, code: str) -> tuple[int, int]:
    """(variant, pair index) for a variant and an LMK code."""
    return variant, LMK_CODES[code]


# Key type code -> (variant, LMK pair index), the payShield 9000 variant table.
KEY_TYPES: dict[str, tuple[int, int]] = {
    "000": _key_type(0, "00"),  # ZMK
    "001": _key_type(0, "01"),  # ZPK
    "002": _key_type(0, "02"),  # TMK, TPK, PVK
    "402": _key_type(4, "02"),  # CVK, CSCK
    "003": _key_type(0, "03"),  # TAK
    "006": _key_type(0, "06"),  # WWK
    "008": _key_type(0, "08"),  # ZAK
    "009": _key_type(0, "09"),  # BDK-1
    "109": _key_type(1, "09"),  # MK-AC
    "209": _key_type(2, "09"),  # MK-SMI
    "309": _key_type(3, "09"),  # MK-SMC
    "409": _key_type(4, "09"),  # MK-DAC
    "509": _key_type(5, "09"),  # MK-DN
    "609": _key_type(6, "09"),  # BDK-2
    "709": _key_type(7, "09"),  # MK-CVC3
    "809": _key_type(8, "09"),  # BDK-3
    "00A": _key_type(0, "0A"),  # ZEK
    "00B": _key_type(0, "0B"),  # DEK
    "30B": _key_type(3, "0B"),  # TEK
    "70D": _key_type(7, "0D"),  # TPK (PCI HSM key type table)
    "80D": _key_type(8, "0D"),  # TMK (PCI HSM key type table)
}


@dataclass(frozen=True)
class LmkSet:
    """The 20 LMK pairs, 16 bytes each, index ``i`` = pair ``2i``-``2i+1``."""

    pairs: tuple[bytes, ...]

    def __post_init__(self) -> None:
        """Refuse a malformed set at load time rather than at the first command."""
        if len(self.pairs) != PAIR_COUNT or any(len(p) != 16 for p in self.pairs):
            raise CryptoError(f"an LMK set is {PAIR_COUNT} pairs of 16 bytes")


# The standard payShield test LMK set (spec "Keys"; also ThalesSim's test LMKs).
TEST_LMK = LmkSet(
    tuple(
        bytes.fromhex(h)
        for h in (
            "01010101010101017902CD1FD36EF8BA", "20202020202020203131313131313131",
            "40404040404040405151515151515151", "61616161616161617070707070707070",
            "80808080808080809191919191919191", "A1A1A1A1A1A1A1A1B0B0B0B0B0B0B0B0",
            "C1C1010101010101D0D0010101010101", "E0E0010101010101F1F1010101010101",
            "1C587F1C13924FEF0101010101010101", "01010101010101010101010101010101",
            "02020202020202020404040404040404", "07070707070707071010101010101010",
            "13131313131313131515151515151515", "16161616161616161919191919191919",
            "1A1A1A1A1A1A1A1A1C1C1C1C1C1C1C1C", "23232323232323232525252525252525",
            "26262626262626262929292929292929", "2A2A2A2A2A2A2A2A2C2C2C2C2C2C2C2C",
            "2F2F2F2F2F2F2F2F3131313131313131", "01010101010101010101010101010101",
        )
    )
)  # fmt: skip


def _pair_label(index: int) -> str:
    """'NN-NN' name of a pair index, as printed by the HSM and used in LMK files."""
    return f"{2 * index:02d}-{2 * index + 1:02d}"


def _parse_lmk_line(number: int, line: str) -> tuple[str, bytes]:
    """One 'NN-NN HEX32' line of an LMK file.

    A bad line is named by its number only: its text is LMK material.
    """
    fields = line.split()
    try:
        label, key = fields
        return label, bytes.fromhex(key)
    except ValueError:
        raise CryptoError(f"LMK file line {number} is not 'NN-NN HEX32'") from None


def load_lmk_file(path: str | Path) -> LmkSet:
    """Read an LMK set from text: one 'NN-NN HEX32' line per pair, 00-01 to 38-39.

    Blank lines and lines starting with '#' are ignored; every pair must
    appear exactly once, so a truncated or duplicated file is refused.
    """
    return parse_lmk_text(Path(path).read_text(encoding="ascii"))


def parse_lmk_text(text: str) -> LmkSet:
    """An LMK set from the text of an LMK file (or of one LMK component)."""
    entries = [
        _parse_lmk_line(n, s)
        for n, s in enumerate(text.splitlines(), 1)
        if s.strip() and not s.lstrip().startswith("#")
    ]
    found = dict(entries)
    expected = [_pair_label(i) for i in range(PAIR_COUNT)]
    if len(entries) != PAIR_COUNT or sorted(found) != expected:
        raise CryptoError(f"LMK file must list each pair {expected[0]}..{expected[-1]} once")
    return LmkSet(tuple(found[label] for label in expected))


def lmk_text(lmk_set: LmkSet, comment: str = "") -> str:
    """The LMK file text of a set: what :func:`load_lmk_file` reads back."""
    head = f"# {comment}\n" if comment else ""
    pairs = "".join(f"{_pair_label(i)} {p.hex().upper()}\n" for i, p in enumerate(lmk_set.pairs))
    return head + pairs


def pair_labels() -> list[str]:
    """'00-01' .. '38-39': the pairs of a set, in order."""
    return [_pair_label(i) for i in range(PAIR_COUNT)]


def random_lmk() -> LmkSet:
    """A random LMK set (one component of a new LMK), every key of odd parity."""
    return LmkSet(tuple(fix_parity(secrets.token_bytes(16)) for _ in range(PAIR_COUNT)))


def combine_components(components: list[LmkSet]) -> LmkSet:
    """An LMK from its components: pair by pair XOR, then odd parity forced.

    Two at least, so that no one custodian knows the LMK (dual control).
    """
    if len(components) < 2:
        raise CryptoError("an LMK is formed from 2 components or more")
    pairs = []
    for i in range(PAIR_COUNT):
        value = bytes(16)
        for component in components:
            value = bytes(a ^ b for a, b in zip(value, component.pairs[i], strict=True))
        pairs.append(fix_parity(value))
    return LmkSet(tuple(pairs))


def _xor_byte(key: bytes, position: int, value: int) -> bytes:
    """``key`` with one byte XORed: how both kinds of variant are applied."""
    return key[:position] + bytes([key[position] ^ value]) + key[position + 1 :]


def _type_pair(lmk: LmkSet, key_type: str) -> bytes:
    """The LMK pair for a key type with its key-type variant in the first byte."""
    try:
        variant, index = KEY_TYPES[key_type.upper()]
    except KeyError:
        raise CryptoError(f"unknown key type {key_type!r}") from None
    return _xor_byte(lmk.pairs[index], 0, VARIANTS[variant])


def _part_keys(pair: bytes, scheme: str) -> list[bytes]:
    """One LMK key per 8-byte part: scheme variants go into the right key's first byte."""
    return [_xor_byte(pair, 8, v) for v in SCHEME_VARIANTS[scheme]]


def _check_scheme(scheme: str, clear: bytes) -> None:
    """The scheme letter fixes the key length; refuse a mismatch."""
    if scheme in SCHEME_VARIANTS:
        expected = 8 * len(SCHEME_VARIANTS[scheme])
    elif scheme in _PLAIN_LENGTHS:
        expected = _PLAIN_LENGTHS[scheme]
    else:
        raise CryptoError(f"unsupported key scheme {scheme!r}")
    if len(clear) != expected:
        raise CryptoError(f"scheme {scheme or 'none'} needs a {expected}-byte key")


def _crypt(pair: bytes, scheme: str, data: bytes, decrypt: bool) -> bytes:
    """ECB under the pair, part by part with scheme variants for U and T."""
    function = decrypt_ecb if decrypt else encrypt_ecb
    if scheme not in SCHEME_VARIANTS:
        return function(pair, data)
    keys = _part_keys(pair, scheme)
    return b"".join(function(k, data[8 * i : 8 * i + 8]) for i, k in enumerate(keys))


def encrypt_key(lmk: LmkSet, key_type: str, clear: bytes, scheme: str) -> str:
    """A clear key as the HSM returns it: scheme letter + uppercase hex under the LMK.

    Single-length keys (scheme '' or 'Z') carry no prefix, as in payShield
    responses; U, T, X and Y keys are prefixed with their letter.
    """
    scheme = scheme.upper()
    _check_scheme(scheme, clear)
    cipher = _crypt(_type_pair(lmk, key_type), scheme, clear, decrypt=False)
    return ("" if scheme == "Z" else scheme) + cipher.hex().upper()


def _split_scheme(encrypted: str) -> tuple[str, bytes]:
    """Scheme letter and cipher bytes of an LMK-encrypted key string."""
    text = encrypted.strip().upper()
    scheme, body = (text[0], text[1:]) if text[:1] in _SCHEME_LETTERS else ("", text)
    if not body or not set(body) <= _HEX_DIGITS:
        raise CryptoError(f"key is not hex: {encrypted!r}")
    cipher = bytes.fromhex(body)
    if scheme:
        return scheme, cipher
    if len(body) not in _SCHEME_BY_HEX_LENGTH:
        raise CryptoError(f"cannot tell the key scheme of {len(body)} hex digits")
    return _SCHEME_BY_HEX_LENGTH[len(body)], cipher


def decrypt_key(lmk: LmkSet, key_type: str, encrypted: str) -> bytes:
    """The clear key behind an LMK-encrypted key string (inverse of :func:`encrypt_key`).

    Without a scheme letter the length decides: 16 hex single, 32 X, 48 Y.
    """
    scheme, cipher = _split_scheme(encrypted)
    _check_scheme(scheme, cipher)
    return _crypt(_type_pair(lmk, key_type), scheme, cipher, decrypt=True)


def lmk_check_value(lmk: LmkSet) -> str:
    """16 hex digits identifying the LMK set: the DES check value of pair 00-01.

    Lets an operator (and the NC command) confirm which LMK is loaded without
    revealing it.
    """
    return kcv_des(lmk.pairs[0]).hex().upper()


TEST_LMK_CHECK = lmk_check_value(TEST_LMK)


def is_test_lmk(check_value: str) -> bool:
    """Whether a reported LMK check value (6 to 16 hex) is the public test LMK's."""
    value = check_value.strip().upper()
    return len(value) >= 6 and TEST_LMK_CHECK.startswith(value)
