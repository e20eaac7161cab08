import unicodedata

import numpy as np
import pytest

from engine.textforms import TEXT_FORMS_AS_IS, TEXT_FORMS_NFKC, finish_text, restore_full_width


@pytest.mark.parametrize(
    "nfkc, printed",
    [
        ("购买方名称:上海明远科技有限公司", "购买方名称：上海明远科技有限公司"),
        ("价税合计(大写):壹仟贰佰捌拾元整", "价税合计（大写）：壹仟贰佰捌拾元整"),
        ("你好,世界!真的吗?是;对", "你好，世界！真的吗？是；对"),
        ("(北京)科技有限公司", "（北京）科技有限公司"),
        ("名称 : 张三", "名称 ： 张三"),  # spaces do not hide the context
        ("大写)贰", "大写）贰"),  # a closing mark whose opening was cut off
    ],
)
def test_punctuation_in_chinese_text_is_full_width(nfkc, printed):
    assert restore_full_width(nfkc) == printed


@pytest.mark.parametrize(
    "text",
    [
        "¥1,234.56",  # thousands separators, currency
        "金额¥1,280.00",  # digits on both sides of the comma, even in a Chinese line
        "税率13%",  # percent stays half width
        "时间12:30",  # times
        "Tel:021-68881234",
        "Smith, John (CEO): hello!",
        "(1)",
        "No.5",
    ],
)
def test_numbers_and_latin_keep_half_width(text):
    assert restore_full_width(text) == text


def test_brackets_stay_paired():
    assert restore_full_width("(ABC)公司") == "(ABC)公司"  # the "(" opens before Latin: both stay
    assert restore_full_width("公司(ABC)") == "公司（ABC）"  # opened after Chinese: both full width


def test_nfkc_folds_every_restored_line_back():
    """Scoring after NFKC sees no change: only forms whose NFKC is the original are used."""
    rng = np.random.default_rng(0)
    alphabet = list("中文数字,:;!?()%¥ 12abAB。、")
    for _ in range(2000):
        s = "".join(rng.choice(alphabet, size=int(rng.integers(1, 15))))
        assert unicodedata.normalize("NFKC", restore_full_width(s)) == unicodedata.normalize("NFKC", s)


def test_only_nfkc_models_are_restored():
    assert finish_text("名称:张三", TEXT_FORMS_NFKC) == "名称：张三"
    assert finish_text("名称:张三", TEXT_FORMS_AS_IS) == "名称:张三"
