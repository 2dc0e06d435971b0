"""Transliteration to printable ASCII and name masking."""

import pytest

from iso.text import TRANSLITERATION, mask_name, to_wire_text


@pytest.mark.parametrize(
    ("text", "wire"),
    [
        ("Гильман П.", "Gilman P."),
        ("Щукин Объект", "Shchukin Obekt"),
        ("Юлия Яковлева", "Yuliya Yakovleva"),
        ("Хачатурян Цой Чжен", "Khachaturyan Tsoy Chzhen"),
        ("Ёлкин Эрик Быков", "Elkin Erik Bykov"),
        ("Өлзийбаяр Үүрийн", "Olziybayar Uuriyn"),
        ("ЦЭЦЭГ", "TsETsEG"),
        ("Əliyev Şahin Çingiz Ağa", "Aliyev Shahin Chingiz Agha"),
        ("İsmayılov Ömər Ünal", "Ismayilov Omar Unal"),
        ("plain ASCII 123 !~", "plain ASCII 123 !~"),
        ("tab\there\nnew", "tabherenew"),
        ("中文 name", " name"),
        ("", ""),
    ],
)
def test_to_wire_text(text: str, wire: str) -> None:
    assert to_wire_text(text) == wire


def test_output_is_always_printable_ascii() -> None:
    every_char = "".join(chr(c) for c in range(0x3000))
    assert all(0x20 <= ord(c) <= 0x7E for c in to_wire_text(every_char))


def test_table_covers_both_cases_of_every_letter() -> None:
    russian = [chr(c) for c in range(ord("А"), ord("я") + 1)] + ["Ё", "ё"]
    others = list("ӨөҮүƏəŞşÇçĞğİıÖöÜü")
    assert set(russian + others) <= set(TRANSLITERATION)
    assert all(value.isascii() for value in TRANSLITERATION.values())


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Gilman P.", "GIL*** P."),
        ("Gilman Petr", "GIL*** P."),
        ("gilman petr ivanovich", "GIL*** P. I."),
        ("Li", "LI***"),
        ("Гильман Пётр", "GIL*** P."),
        ("Өлзийбаяр Батын", "OLZ*** B."),
        ("Əliyev İlham", "ALI*** I."),
        ("  O'Brien   -  Mary-Ann ", "OBR*** M."),
        ("", ""),
        ("中文", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert mask_name(name) == masked
