"""The character language model, the prefix beam search, hotwords and per-character confidences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from distill.lm import count_ngrams, estimate
from engine.beam import BeamSettings, Hotwords, prefix_beam_search
from engine.ctc import aligned_peaks, greedy_labels
from engine.decoder import DecoderConfig, LineDecoder
from engine.lm import BOS, EOS, CharLM, write_arpa
from engine.modelpkg import ModelSpec

CORPUS = [
    "发票号码",
    "发票代码",
    "开票日期",
    "发票专用章",
    "增值税专用发票",
    "购买方名称",
    "销售方名称",
    "invoice no",
    "tax id",
    "发票号码 12345",
    "开票人",
    "收款人",
] * 3 + ["栗子"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> CharLM:
    grams = estimate(count_ngrams(CORPUS, 4), (1, 1, 1, 2))
    path = tmp_path_factory.mktemp("lm") / "tiny.arpa.gz"
    write_arpa(path, grams)
    return CharLM.load(path)


def vocabulary(lm: CharLM) -> list[str]:
    return sorted({c for line in CORPUS for c in line} | {EOS})


@pytest.mark.parametrize("context", ["", BOS, BOS + "发", "发票", "票号码", "xyz", "号码 1"])
def test_every_context_distribution_sums_to_one(lm, context):
    """Kneser-Ney with pruned n-grams and recomputed backoff weights still gives each context
    a proper distribution over the vocabulary, the line's end and the unknown character."""
    unknown = "\uffff"  # never seen: backs off to <unk> through every order
    total = sum(math.exp(lm.logp(context, c)) for c in vocabulary(lm)) + math.exp(lm.logp(context, unknown))
    assert total == pytest.approx(1.0, abs=1e-4)  # the ARPA file keeps 5 decimals of log10


def test_language_model_prefers_what_it_read(lm):
    assert lm.score("发票号码") > lm.score("码号票发") + 5
    assert lm.logp(BOS + "发", "票") > lm.logp(BOS + "发", "栗") + 2


def test_arpa_round_trip_keeps_the_probabilities(lm, tmp_path):
    grams = estimate(count_ngrams(CORPUS, 3), (1, 1, 1))
    write_arpa(tmp_path / "a.arpa.gz", grams)
    again = CharLM.load(tmp_path / "a.arpa.gz")
    for gram, (p, _) in grams[2].items():
        assert again.logp(gram[:-1], gram[-1]) == pytest.approx(p, abs=1e-4)
    assert " " in {k[-1] for k in again._logp}  # the space survives as <sp>


def probs(rows: list[list[float]]) -> np.ndarray:
    return np.log(np.asarray(rows, dtype=np.float64))


def test_beam_sums_alignments_where_greedy_cannot():
    # greedy: blank, blank -> ""; but P("a") = .4*.4 + .4*.6 + .6*.4 = .64 > P("") = .36
    logp = probs([[0.6, 0.4], [0.6, 0.4]])
    assert greedy_labels(np.exp(logp), 0).labels.tolist() == []
    assert prefix_beam_search(logp, 0, ("", "a"), BeamSettings()) == [1]


def test_beam_keeps_doubled_characters_apart():
    logp = probs([[0.01, 0.98, 0.01], [0.98, 0.01, 0.01], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]])
    assert prefix_beam_search(logp, 0, ("", "a", "b"), BeamSettings()) == [1, 1, 2]


def test_language_model_settles_a_doubtful_character(lm):
    tokens = ("", "发", "票", "栗", "号")
    # the model slightly prefers 栗 (chestnut) after 发; the LM knows 发票
    logp = probs(
        [
            [0.02, 0.96, 0.01, 0.005, 0.005],
            [0.9, 0.04, 0.02, 0.03, 0.01],
            [0.02, 0.01, 0.45, 0.51, 0.01],
            [0.96, 0.01, 0.01, 0.01, 0.01],
        ]
    )
    assert prefix_beam_search(logp, 0, tokens, BeamSettings()) == [1, 3]
    assert prefix_beam_search(logp, 0, tokens, BeamSettings(alpha=0.5, beta=1.0), lm) == [1, 2]


def test_hotword_automaton_follows_overlapping_words():
    hw = Hotwords(["abc", "bcd", " abc "])  # the same word twice, spaces trimmed
    assert hw.words == ("abc", "bcd")
    node = 0
    depths = []
    for c in "xabcd":
        node = hw.step(node, c)
        depths.append(hw.depth[node])
    assert depths == [0, 1, 2, 3, 3]  # after "abc", "d" continues "bcd" through the failure link


def one_hot_line(tokens: tuple[str, ...], text: str, doubt: dict[int, dict[str, float]] | None = None) -> np.ndarray:
    """Probabilities [T, C]: each character of ``text`` on one step, a blank step after it;
    ``doubt[i]`` spreads character i's step over other characters."""
    index = {t: i for i, t in enumerate(tokens)}
    rows = []
    for i, c in enumerate(text):
        row = np.full(len(tokens), 1e-4)
        for other, p in (doubt or {}).get(i, {c: 1.0}).items():
            row[index[other]] = p
        rows.append(row / row.sum())
        blank = np.full(len(tokens), 1e-4)
        blank[0] = 1.0
        rows.append(blank / blank.sum())
    return np.asarray(rows)


SPEC_CLASSES = ("", "华", "为", "化", "科", "技", "有", "限", "公", "司", "票")


def spec() -> ModelSpec:
    return ModelSpec(
        name="t",
        classes=SPEC_CLASSES,
        blank_index=0,
        input_height=32,
        input_channels=1,
        color_order="GRAY",
        norm_mean=(0.5,),
        norm_std=(0.5,),
        output_kind="probs",
    )


def test_hotwords_fix_a_name_greedy_reads_wrong():
    # the model reads 化为科技 (0.55 vs 0.45 on the first character); the customer's vocabulary says 华为科技
    line = one_hot_line(SPEC_CLASSES, "华为科技有限公司", doubt={0: {"化": 0.55, "华": 0.45}})
    greedy = LineDecoder().decode(line, spec())
    assert greedy.text == "化为科技有限公司"
    decoder = LineDecoder(DecoderConfig("greedy", BeamSettings(bonus=2.0)))
    fixed = decoder.decode(line, spec(), hotwords=Hotwords(["华为科技有限公司"]))
    assert fixed.text == "华为科技有限公司" and fixed.searched
    assert [c for c, _ in fixed.chars] == list(fixed.text)
    assert fixed.chars[0][1] == pytest.approx(0.45, abs=1e-3)  # the confidence stays the model's own
    # an unrelated hotword changes nothing
    assert decoder.decode(line, spec(), hotwords=Hotwords(["票"])).text == "化为科技有限公司"


def test_unfinished_hotword_keeps_no_bonus():
    # "华为科" alone must not be pulled towards the hotword 华为科技有限公司 with a wrong first character
    line = one_hot_line(SPEC_CLASSES, "化为", doubt={0: {"化": 0.7, "华": 0.3}})
    decoder = LineDecoder(DecoderConfig("greedy", BeamSettings(bonus=0.5)))
    assert decoder.decode(line, spec(), hotwords=Hotwords(["华为科技有限公司"])).text == "化为"


def test_sure_lines_are_read_greedily_and_doubtful_ones_searched():
    decoder = LineDecoder(DecoderConfig("beam", BeamSettings(), doubt=0.2))
    sure = decoder.decode(one_hot_line(SPEC_CLASSES, "有限公司"), spec())
    doubtful = decoder.decode(one_hot_line(SPEC_CLASSES, "有限公司", doubt={1: {"限": 0.6, "票": 0.4}}), spec())
    assert not sure.searched and doubtful.searched
    assert sure.text == doubtful.text == "有限公司"
    assert doubtful.chars_payload()[1] == {"text": "限", "confidence": pytest.approx(0.6, abs=1e-3)}


def test_aligned_peaks_give_each_character_its_steps():
    line = one_hot_line(SPEC_CLASSES, "公公司", doubt={2: {"司": 0.8, "票": 0.2}})
    logp = np.log(line)
    peaks = aligned_peaks(logp, [8, 8, 9], 0)
    assert peaks == pytest.approx([1.0, 1.0, 0.8], abs=2e-3)
    read = greedy_labels(line, 0)
    assert read.peaks == pytest.approx(peaks, abs=1e-6)


def test_a_prefix_scores_whatever_order_its_parents_were_seen_in(lm):
    """A prefix's LM score is computed with those of its prefixes the search never scored."""
    from engine.beam import _Search

    tokens = ("", "发", "票", "号", "码")
    search = _Search(np.zeros((1, 5)), 0, tokens, lm, BeamSettings(alpha=1.0, beta=0.5), None)
    deep = search.extra((1, 2, 3, 4))
    assert deep == pytest.approx(lm.score("发票号码", eos=False) + 4 * 0.5, abs=1e-9)
    assert set(search.info) == {(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4)}
