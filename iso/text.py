"""Text for the wire: printable ASCII only (spec section 2).

Billers hold names in Cyrillic (Russian, Mongolian) or Azerbaijani Latin;
terminals print ASCII. The transliteration is deliberately simple and
readable rather than reversible:

- Russian: common passport-style romanisation (Ж Zh, Х Kh, Ц Ts, Ч Ch, Ш Sh,
  Щ Shch, Ю Yu, Я Ya, Й Y, Ы Y, Ё and Э E); Ь and Ъ are dropped.
- Mongolian Cyrillic adds Ө -> O and Ү -> U.
- Azerbaijani: the spelling used in English (Ə A, Ş Sh, Ç Ch, Ğ Gh, İ I,
  ı i, Ö O, Ü U).

Multi-letter results are title case (Ш -> Sh), also inside upper-case words.
Whatever is still outside 0x20-0x7E afterwards is dropped.
"""

from __future__ import annotations

import string

# Upper-case Cyrillic letters; the lower-case entries are derived below.
# fmt: off
_CYRILLIC: dict[str, str] = {
    "А": "A", "Б": "B", "В": "V", "Г": "G", "Д": "D", "Е": "E", "Ё": "E",
    "Ж": "Zh", "З": "Z", "И": "I", "Й": "Y", "К": "K", "Л": "L", "М": "M",
    "Н": "N", "О": "O", "П": "P", "Р": "R", "С": "S", "Т": "T", "У": "U",
    "Ф": "F", "Х": "Kh", "Ц": "Ts", "Ч": "Ch", "Ш": "Sh", "Щ": "Shch",
    "Ъ": "", "Ы": "Y", "Ь": "", "Э": "E", "Ю": "Yu", "Я": "Ya",
    "Ө": "O", "Ү": "U",
}
# fmt: on

# Azerbaijani specials, both cases spelled out: "İ".lower() is not "i".
# fmt: off
_AZERBAIJANI: dict[str, str] = {
    "Ə": "A", "ə": "a", "Ş": "Sh", "ş": "sh", "Ç": "Ch", "ç": "ch",
    "Ğ": "Gh", "ğ": "gh", "İ": "I", "ı": "i", "Ö": "O", "ö": "o",
    "Ü": "U", "ü": "u",
}
# fmt: on

TRANSLITERATION: dict[str, str] = {
    **_CYRILLIC,
    **{upper.lower(): latin.lower() for upper, latin in _CYRILLIC.items()},
    **_AZERBAIJANI,
}

_TABLE = str.maketrans(TRANSLITERATION)
_PRINTABLE = frozenset(chr(c) for c in range(0x20, 0x7F))
_ALNUM = frozenset(string.ascii_letters + string.digits)

MASK = "***"
FIRST_WORD_KEPT = 3


def to_wire_text(s: str) -> str:
    """Transliterate per the module table, then drop any non-printable-ASCII character."""
    return "".join(c for c in s.translate(_TABLE) if c in _PRINTABLE)


def _letters(word: str) -> str:
    """Letters and digits of a word, without punctuation such as '.' or '-'."""
    return "".join(c for c in word if c in _ALNUM)


def mask_name(name: str) -> str:
    """Mask a customer name for DE 48 NM: "Gilman Petr" -> "GIL*** P.".

    The payer sees enough to recognise the account holder, a bystander or a
    log reader not enough to identify them. Words without letters or digits
    are skipped; a name with none at all gives "".
    """
    words = [w for w in (_letters(w) for w in to_wire_text(name).split()) if w]
    if not words:
        return ""
    head = words[0][:FIRST_WORD_KEPT].upper() + MASK
    return " ".join([head, *(f"{w[0].upper()}." for w in words[1:])])
