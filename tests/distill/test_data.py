import numpy as np
import pytest

from distill.data import BucketCollate, Collate, LabelledLines, SyntheticLines, curriculum_strength, read_labels
from distill.fonts import discover, faces_for, is_reserved
from distill.text import TextSource, split_of


def test_reserved_fonts_are_never_discovered():
    assert is_reserved("AR PL SungtiL GB") and is_reserved("LXGW WenKai") and is_reserved("Droid Sans Fallback")
    # fonts built from reserved designs are refused too
    assert is_reserved("BabelStone Han") and is_reserved("Klee One") and is_reserved("WenQuanYi Micro Hei")
    assert not any(is_reserved(f.name) for f in discover())


def test_a_family_with_many_weights_is_drawn_as_often_as_one_with_a_single_face():
    from distill.render import pick_face

    text = "增值税发票"
    faces = faces_for("train")
    families = {f.name for f in faces if f.covers(text)}
    per_family = {name: sum(f.name == name for f in faces) for name in families}
    assert max(per_family.values()) > 1 and min(per_family.values()) == 1  # Noto's weights vs one-face families
    rng = np.random.default_rng(0)
    drawn = [pick_face(text, faces, rng) for _ in range(4000)]
    assert all(f.covers(text) for f in drawn)
    share = {name: sum(f.name == name for f in drawn) / len(drawn) for name in families}
    assert all(abs(v - 1 / len(families)) < 0.03 for v in share.values()), share
    assert pick_face("增值税发票", (), rng) is None


def test_dev_fonts_are_held_out_of_training():
    train = {(f.path, f.index) for f in faces_for("train")}
    dev = {(f.path, f.index) for f in faces_for("dev")}
    assert train and dev and not train & dev
    assert any("WenQuanYi" in f.name for f in faces_for("dev"))


def test_text_sources_respect_the_split_and_the_charset(charset, rng):
    train = TextSource(charset, "train")
    dev = TextSource(charset, "dev")
    for kind in TextSource.KINDS:
        for _ in range(5):
            t = train.sample(rng, kind)
            assert split_of(t) == "train" and charset.covers(t) and t
            assert split_of(dev.sample(rng, kind)) == "dev"


def test_synthetic_lines_are_deterministic_and_32_high():
    ds = SyntheticLines(10, seed=5)
    a, b = ds[3], SyntheticLines(10, seed=5)[3]
    assert a[1] == b[1] and np.array_equal(a[0], b[0])
    assert a[0].shape[0] == 32 and a[0].dtype == np.uint8


def test_rendered_lines_only_use_fonts_with_every_glyph():
    ds = SyntheticLines(20, split="train", seed=1)
    faces = {f.label: f for f in faces_for("train")}
    for i in range(20):
        _, text, face = ds.sample(i)
        assert faces[face].covers(text)


def test_written_dataset_round_trips(line_dir, charset):
    items = read_labels(line_dir)
    assert len(items) == 6 and all((line_dir / rel).is_file() for rel, _ in items)
    batch = Collate(charset)([LabelledLines(line_dir)[i] for i in range(3)])
    assert batch["images"].shape[:3] == (3, 1, 32)
    assert batch["images"].shape[3] % 4 == 0
    assert int(batch["target_lengths"].sum()) == batch["targets"].numel()


def test_bucketing_regroups_lines_by_width_and_keeps_every_line(charset):
    ds = SyntheticLines(48, split="train", seed=9)
    lines = [ds[i] for i in range(48)]
    batches = BucketCollate(Collate(charset), batch_size=12)(lines)
    assert [len(b["texts"]) for b in batches] == [12, 12, 12, 12]
    assert sorted(t for b in batches for t in b["texts"]) == sorted(t for _, t in lines)
    # each batch holds a contiguous run of widths: no two batches' width ranges overlap
    spans = sorted((int(b["input_lengths"].min()), int(b["input_lengths"].max())) for b in batches)
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:]))

    def padding(bs):
        return 1 - sum(float(b["input_lengths"].sum()) for b in bs) / sum(
            b["input_lengths"].numel() * b["images"].shape[3] / 4 for b in bs
        )

    plain = [Collate(charset)(lines[i : i + 12]) for i in range(0, 48, 12)]
    assert padding(batches) < padding(plain)
    # the order depends on the lines only
    again = BucketCollate(Collate(charset), batch_size=12)(lines)
    assert [b["texts"] for b in again] == [b["texts"] for b in batches]


def test_the_curriculum_ramps_augmentation_up_unless_told_to_start_at_full_strength():
    def strengths(progress, ramp):
        rng = np.random.default_rng(0)
        return np.array([curriculum_strength(progress, rng, ramp=ramp) for _ in range(2000)])

    early, late, full = strengths(0.0, True), strengths(0.9, True), strengths(0.0, False)
    for s in (early, late, full):
        assert 0.2 < (s == 0.0).mean() < 0.3  # a quarter of the lines stay clean either way
    assert early.max() <= 0.3 + 1e-9  # the ramp caps the first lines at 0.3
    assert late.max() > 0.95 and full.max() > 0.95
    assert abs(full.mean() - late.mean()) < 0.05  # without the ramp, step 0 looks like the end of a run


def test_the_wide_mix_is_deterministic_and_draws_prose_both_renderers_and_any_margin():
    from distill.render import PANGO_SHARE
    from distill.text import _prose_lines

    ds = SyntheticLines(60, split="train", seed=4, mix="wide", strength=0.0)
    again = SyntheticLines(60, split="train", seed=4, mix="wide", strength=0.0)
    prose = set(_prose_lines())
    texts, widths_per_char = [], []
    for i in range(60):
        img, text, _ = ds.sample(i)
        other, text2, _ = again.sample(i)
        assert text == text2 and np.array_equal(img, other)
        assert img.shape[0] == 32 and img.dtype == np.uint8
        texts.append(text)
        widths_per_char.append(img.shape[1] / max(len(text), 1))
    assert any(any(t in p for p in prose) for t in texts)  # prose lines, cut to the line length
    # margins from a 1 px cut to one and a half heights each side: widths per character spread widely
    assert max(widths_per_char) > 2 * min(widths_per_char)
    assert 0 < PANGO_SHARE < 1


def test_the_v1_mix_is_what_it_was():
    """The dev sets and the shipped student's training data come from the v1 mix: the wide mix's
    additions (prose weight 0 in v1) must not change which texts v1 draws."""
    from distill.text import TextSource

    assert TextSource.WEIGHTS[TextSource.KINDS.index("prose")] == 0.0
    assert abs(sum(TextSource.WEIGHTS) - 1) < 1e-9 and abs(sum(TextSource.WIDE_WEIGHTS) - 1) < 1e-9
    with pytest.raises(ValueError):
        SyntheticLines(4, mix="v3")
