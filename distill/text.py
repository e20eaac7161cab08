"""Text sources for synthetic lines, and the stable train/dev text split.

Sources: jieba's word list sampled by (smoothed) real frequency, technical prose (the
"wide" mix: ``train_prose.txt``), invoice fields
(names, companies, addresses, dates, amounts, tax ids, phone and account
numbers) from Faker zh_CN, English from Faker en_US, digit strings, mixed
lines, and a small share of uniformly drawn GB2312 characters so rare
characters are seen at all. A line belongs to the dev split when the hash of
its normalised text says so; a generator for one split rejects lines of the
other, so dev lines never occur in training.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache

import numpy as np

from engine.charset import Charset, normalize

DEV_PERCENT = 10
# Faker draws dates up to the moment it is called unless told an end: the same seed then gives
# other dates, other dev/train splits and so other lines hours later. 2026-12-01 00:00 UTC, in
# seconds (a number, so no machine's time zone enters either).
DATES_UNTIL = 1_796_083_200

INVOICE_LABELS = (
    "发票代码",
    "发票号码",
    "开票日期",
    "校验码",
    "机器编号",
    "名称",
    "纳税人识别号",
    "地址、电话",
    "开户行及账号",
    "金额",
    "税率",
    "税额",
    "价税合计（大写）",
    "价税合计（小写）",
    "合计",
    "备注",
    "收款人",
    "复核",
    "开票人",
    "销售方",
    "购买方",
    "规格型号",
    "单位",
    "数量",
    "单价",
    "货物或应税劳务名称",
    "统一社会信用代码",
    "电话",
    "账号",
    "开户银行",
    "日期",
    "总计",
    "小计",
    "应付金额",
    "实收",
    "找零",
)
UNITS = ("件", "个", "台", "套", "箱", "吨", "千克", "米", "次", "项", "批", "张", "kg", "m", "pcs")
RATES = ("0%", "1%", "3%", "6%", "9%", "13%", "免税", "不征税")
UPPER_DIGITS = "零壹贰叁肆伍陆柒捌玖"
UPPER_UNITS = ("", "拾", "佰", "仟", "万", "拾", "佰", "仟", "亿")
TAX_ALNUM = "0123456789ABCDEFGHJKLMNPQRTUWXY"
FULLWIDTH = str.maketrans({":": "：", "(": "（", ")": "）", ",": "，", "%": "％", ";": "；", "!": "！", "?": "？"})


def split_of(text: str) -> str:
    """'dev' for about DEV_PERCENT % of texts, decided by a stable hash."""
    digest = hashlib.md5(normalize(text).encode("utf-8")).digest()
    return "dev" if digest[0] * 100 // 256 < DEV_PERCENT else "train"


@lru_cache(maxsize=1)
def _jieba_words() -> tuple[tuple[str, ...], np.ndarray]:
    import jieba

    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    words, freqs = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                words.append(parts[0])
                freqs.append(int(parts[1]))
    return tuple(words), np.asarray(freqs, dtype=np.float64)


@lru_cache(maxsize=4)
def _word_table(classes: tuple[str, ...], max_len: int, freq_power: float):
    """jieba words fully inside the charset, and the cumulative sampling distribution."""
    words, freqs = _jieba_words()
    known = set(classes)
    keep = [i for i, w in enumerate(words) if len(w) <= max_len and known.issuperset(w)]
    p = freqs[keep] ** freq_power
    return [words[i] for i in keep], np.cumsum(p / p.sum())


@lru_cache(maxsize=1)
def _prose_lines() -> tuple[str, ...]:
    path = os.path.join(os.path.dirname(__file__), "train_prose.txt")
    with open(path, encoding="utf-8") as f:
        return tuple(line.rstrip("\n") for line in f if line.strip() and not line.startswith("#"))


class TextSource:
    """Draws label texts (already covered by the charset) for one split."""

    KINDS = ("words", "invoice", "english", "digits", "mixed", "rare", "prose")
    WEIGHTS = (0.38, 0.24, 0.1, 0.1, 0.1, 0.08, 0.0)
    # the "wide" training mix: real sentences (technical prose) take a share from jieba's words
    WIDE_WEIGHTS = (0.26, 0.22, 0.1, 0.1, 0.08, 0.06, 0.18)

    def __init__(
        self,
        charset: Charset,
        split: str = "train",
        min_len: int = 2,
        max_len: int = 12,
        seed: int = 0,
        freq_power: float = 0.5,
        weights: tuple[float, ...] | None = None,
    ):
        if split not in ("train", "dev"):
            raise ValueError("split must be 'train' or 'dev'")
        self.weights = weights or self.WEIGHTS
        self.charset = charset
        self.split = split
        self.min_len = min_len
        self.max_len = max_len
        self.words, self.word_cdf = _word_table(charset.classes, max_len, freq_power)
        self.hanzi = [c for c in charset.chars if "\u4e00" <= c <= "\u9fff"]
        self._seed = seed
        self._fakers = None

    def _faker(self, rng: np.random.Generator):
        if self._fakers is None:
            from faker import Faker

            self._fakers = (Faker("zh_CN"), Faker("en_US"))
        zh, en = self._fakers
        s = int(rng.integers(0, 2**31))
        zh.seed_instance(s)
        en.seed_instance(s + 1)
        return zh, en

    def _word(self, rng) -> str:
        return self.words[int(np.searchsorted(self.word_cdf, rng.random()))]

    def _fit(self, text: str, rng, limit: int | None = None) -> str:
        limit = limit or self.max_len
        text = text.strip()
        if len(text) <= limit:
            return text
        n = int(rng.integers(self.min_len, limit + 1))
        start = int(rng.integers(0, len(text) - n + 1))
        return text[start : start + n].strip()

    def _amount(self, rng) -> str:
        value = float(np.exp(rng.uniform(0, 13)))
        style = rng.integers(0, 4)
        if style == 0:
            return f"¥{value:,.2f}"
        if style == 1:
            return f"{value:.2f}"
        if style == 2:
            return f"￥{value:.2f}"
        return f"{int(value)}"

    def _upper_amount(self, rng) -> str:
        n = int(rng.integers(1, 10**6))
        digits = str(n)
        out = ""
        for i, d in enumerate(digits):
            pos = len(digits) - 1 - i
            if d != "0":
                out += UPPER_DIGITS[int(d)] + UPPER_UNITS[pos]
            elif not out.endswith("零"):
                out += "零"
        return out.rstrip("零") + rng.choice(["圆整", "元整", "圆"])

    def _tax_id(self, rng) -> str:
        return "".join(rng.choice(list(TAX_ALNUM), size=18))

    def _invoice(self, rng) -> str:
        zh, _ = self._faker(rng)
        kind = rng.integers(0, 11)
        value = [
            zh.name,
            zh.company,
            zh.address,
            lambda: zh.date(
                pattern=str(rng.choice(["%Y-%m-%d", "%Y年%m月%d日", "%Y/%m/%d"])), end_datetime=DATES_UNTIL
            ),
            lambda: self._amount(rng),
            lambda: self._tax_id(rng),
            zh.phone_number,
            lambda: zh.bban()[:19],
            lambda: self._upper_amount(rng),
            lambda: str(rng.choice(RATES)),
            lambda: str(rng.integers(10**7, 10**8)),
        ][kind]()
        if rng.random() < 0.45:
            label = str(rng.choice(INVOICE_LABELS))
            sep = str(rng.choice(["：", ":", " ", ""]))
            value = label + sep + value
        if rng.random() < 0.3:
            value = value.translate(FULLWIDTH)
        return self._fit(value, rng, self.max_len + 4)

    def _english(self, rng) -> str:
        _, en = self._faker(rng)
        kind = rng.integers(0, 6)
        text = [
            en.name,
            en.company,
            en.street_address,
            lambda: en.sentence(nb_words=4),
            lambda: en.word().capitalize() + " " + en.word(),
            en.email,
        ][kind]()
        return self._fit(text, rng, 2 * self.max_len)

    def _digits(self, rng) -> str:
        zh, _ = self._faker(rng)
        kind = rng.integers(0, 6)
        text = [
            lambda: self._amount(rng),
            zh.phone_number,
            lambda: zh.date(pattern="%Y-%m-%d", end_datetime=DATES_UNTIL),
            lambda: "".join(map(str, rng.integers(0, 10, size=int(rng.integers(self.min_len, 2 * self.max_len))))),
            lambda: f"{rng.integers(0, 1000)}.{rng.integers(0, 100):02d}%",
            lambda: f"No.{rng.integers(10**5, 10**9)}",
        ][kind]()
        return self._fit(text, rng, 2 * self.max_len)

    def _mixed(self, rng) -> str:
        kind = rng.integers(0, 5)
        w = self._word(rng)
        if kind == 0:
            text = f"{w}{rng.integers(1, 1000)}{rng.choice(UNITS)}"
        elif kind == 1:
            text = f"{w}{rng.choice(['：', ':', ' '])}{self._amount(rng)}"
        elif kind == 2:
            _, en = self._faker(rng)
            text = f"{w}{en.bothify('???-###').upper()}"
        elif kind == 3:
            text = f"（{w}）{self._word(rng)}"
        else:
            text = f"{rng.integers(1, 13)}月{rng.integers(1, 32)}日{w}"
        return self._fit(text, rng)

    def _words(self, rng) -> str:
        target = int(rng.integers(self.min_len, self.max_len + 1))
        text = ""
        while len(text) < target:
            text += self._word(rng)
            if rng.random() < 0.12:
                text += str(rng.choice(["，", "。", "、", "；", "：", "“", "”", "《", "》", "！", "？"]))
        return self._fit(text[: self.max_len], rng)

    def _prose(self, rng) -> str:
        lines = _prose_lines()
        return self._fit(lines[int(rng.integers(len(lines)))], rng, self.max_len + 4)

    def _rare(self, rng) -> str:
        n = int(rng.integers(self.min_len, self.max_len + 1))
        return "".join(rng.choice(self.hanzi, size=n))

    def sample(self, rng: np.random.Generator, kind: str | None = None) -> str:
        for _ in range(100):
            k = kind or str(rng.choice(self.KINDS, p=self.weights))
            text = getattr(self, f"_{k}")(rng)
            if len(normalize(text).strip()) < 1 or not self.charset.covers(text):
                continue
            if split_of(text) != self.split:
                continue
            return text
        raise RuntimeError("could not draw a text for this split")
