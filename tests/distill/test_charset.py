import unicodedata

from engine.charset import CHARSET_FILE, read_charset_file


def test_it_holds_all_gb2312_hanzi_ascii_and_invoice_symbols(charset):
    hanzi = set()
    for hi in range(0xB0, 0xF8):
        for lo in range(0xA1, 0xFF):
            try:
                hanzi.add(bytes([hi, lo]).decode("gb2312"))
            except UnicodeDecodeError:
                pass
    assert len(hanzi) == 6763
    chars = set(charset.chars)
    assert hanzi <= chars
    assert {chr(c) for c in range(0x20, 0x7F)} <= chars
    assert set("¥。、“”‘’《》【】—·×÷±") <= chars


def test_blank_is_class_zero_and_entries_are_unique_and_nfkc_stable(charset):
    assert charset.classes[0] == "" and charset.blank_index == 0
    chars = read_charset_file(CHARSET_FILE)
    assert len(set(chars)) == len(chars) == len(charset) - 1
    assert all(unicodedata.normalize("NFKC", c) == c for c in chars)


def test_it_encodes_full_width_forms_as_ascii(charset):
    assert charset.decode(charset.encode("金额（小写）：１２％")) == "金额(小写):12%"
