"""`python -m distill lm`: what the language model is counted on, and that it builds and loads."""

from __future__ import annotations

from distill.lm import build, corpus_lines, default_min_count
from distill.ood import read_texts
from engine.charset import normalize
from engine.lm import CharLM


def test_the_corpus_holds_prose_and_generated_lines_and_none_of_the_suite():
    lines = corpus_lines(generated=400, seed=3)
    held_out = {normalize(text).replace(" ", "") for _, text in read_texts()}
    assert len(lines) > 400
    assert not held_out & {line.replace(" ", "") for line in lines}
    assert any("有限公司" in line for line in lines)  # invoice fields from the generator


def test_a_small_model_builds_loads_and_reads_prose_better_than_noise(tmp_path):
    out = tmp_path / "lm.arpa.gz"
    report = build(out, order=3, generated=2000, seed=1)
    assert report["order"] == 3 and len(report["ngrams"]) == 3 and out.stat().st_size == report["bytes"]
    lm = CharLM.load(out)
    assert lm.order == 3
    assert lm.score("发票号码") > lm.score("码发号票")


def test_pruning_keeps_every_context_of_a_kept_ngram():
    """Counts never grow with the order, so thresholds that do not fall keep an n-gram's context."""
    for order in (2, 3, 5):
        counts = default_min_count(order)
        assert counts[0] == 1 and list(counts) == sorted(counts)
