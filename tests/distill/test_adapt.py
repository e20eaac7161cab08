"""Adapting the served recogniser to a dataset: what the dataset cannot teach is reported, people's
labels are learnt whatever the teacher reads, batches mix the dataset with replayed lines, and a
run stops early, resumes and keeps its best package (distill/adapt.py)."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from distill import adapt, domains, warmstart
from distill.data import held_back, read_labels, write_labels
from engine.inference import Recognizer
from engine.modelfile import file_sha256
from engine.modelpkg import REFERENCE_FILES, ModelSpec

MODELS = Path(__file__).resolve().parents[2] / "models"
TINY = MODELS / REFERENCE_FILES["ppocrv6-tiny"]
SMALL = MODELS / REFERENCE_FILES["ppocrv6-small"]


@pytest.fixture(scope="module")
def dot_lines(tmp_path_factory, faces):
    """A small dot-matrix dataset: 24 lines to adapt on, 6 to test on (distill/domains.py)."""
    out = tmp_path_factory.mktemp("dots")
    counts = domains.write_domain("dot-matrix", out, 24, 6, out / "fonts", seed=1)
    assert counts == {"adapt": 24, "test": 6}
    return out


def test_a_domains_adaptation_and_test_lines_share_no_text_and_are_dot_printed(dot_lines):
    adapt_texts = {t for _, t in read_labels(dot_lines / "adapt")}
    test_texts = {t for _, t in read_labels(dot_lines / "test")}
    assert len(adapt_texts) == 24 and len(test_texts) == 6 and not adapt_texts & test_texts
    rel, _ = read_labels(dot_lines / "test")[0]
    img = cv2.imread(str(dot_lines / "test" / rel), cv2.IMREAD_GRAYSCALE)
    # struck dots: dark spots with paper between them along a row of ink
    row = img[np.argmin(img.mean(axis=1))]
    dark = row < (int(row.min()) + int(row.max())) // 2
    assert np.count_nonzero(np.diff(dark.astype(np.int8)) == 1) >= 4


def test_lines_the_model_cannot_learn_are_reported_with_their_reason(tmp_path, dot_lines):
    folder = tmp_path / "d"
    shutil.copytree(dot_lines / "adapt", folder)
    items = read_labels(folder)
    train = [(rel, text) for rel, text in items if not held_back(rel)]
    (folder / "broken.png").write_bytes(b"not an image")
    extra = [(train[0][0], train[0][1]), (train[1][0], "鿿鿾 abc"), ("broken.png", "坏图")]
    extra = [(rel, text) for rel, text in extra if not held_back(rel)]
    write_labels(folder, items + extra)
    spec = ModelSpec.from_file(TINY)
    axis = warmstart.CharAxis.build(spec, ModelSpec.from_file(SMALL))
    lines, problems = adapt.dataset_lines(folder, axis, spec, warmstart.OnnxTeacher(SMALL, axis))
    # the domain's own texts may hold a character the served model lacks: those are reported too
    lacking = {rel for rel, text in train if axis.encode(text) is None}
    assert len(lines) == len(train) - len(lacking) and all(it["trusted"] for it in lines)
    assert problems["duplicate"] == [{"line": train[0][0], "same_as": train[0][0]}]
    assert {p["line"] for p in problems["unproducible"]} == lacking | {train[1][0]}
    assert [p["characters"] for p in problems["unproducible"] if p["text"] == "鿿鿾 abc"] == ["鿾鿿"]
    assert problems["unreadable"] == [{"line": "broken.png"}]


def test_peoples_labels_are_learnt_by_ctc_and_not_by_the_teachers_reading():
    logp = torch.log_softmax(torch.randn(2, 6, 5), -1).requires_grad_()

    class Fixed(torch.nn.Module):
        adapter = None

        def forward(self, images):
            return logp, torch.zeros(2, 6, 3)

    wrong = torch.tensor([[[4]] * 6] * 2)  # the teacher reads class 4 everywhere: not the label
    batch = {
        "images": None,
        "lengths": torch.tensor([6, 6]),
        "labels": torch.tensor([1, 2, 1, 2]),
        "label_lengths": torch.tensor([2, 2]),
        "top_idx": wrong,
        "top_p": torch.ones(2, 6, 1),
        "readable": torch.tensor([False, False]),
        "trusted": torch.tensor([True, False]),
    }
    _, parts = warmstart.warm_loss(Fixed(), batch, {"ctc": 1.0, "kd": 1.0})
    assert parts["ctc"] > 0  # the trusted line's CTC counts although the teacher misreads it
    assert parts["kd"] == 0  # and neither line learns the teacher's (wrong) reading
    batch["trusted"] = torch.tensor([False, False])
    _, parts = warmstart.warm_loss(Fixed(), batch, {"ctc": 1.0, "kd": 1.0})
    assert parts["ctc"] == 0


def test_an_adaptation_run_mixes_batches_stops_early_resumes_and_keeps_its_best(tmp_path, dot_lines, monkeypatch):
    monkeypatch.setattr(warmstart, "SHARD", 4)
    replay = tmp_path / "replay"
    kw = dict(replay_lines=8, general_lines=12, batch_size=4, lr=1e-3, eval_every=2, seed=2, threads=1)
    kw.update(log=lambda _: None, guard_margin=-1.0)  # the adapted weights alone (guarded: below)
    kw.update(noise_band=0.0)  # only a better evaluation is kept (the band: its own test below)
    summary = adapt.adapt(dot_lines / "adapt", tmp_path / "run", TINY, SMALL, replay, steps=4, patience=10, **kw)
    left_out = sum(summary["left_out_counts"].values())  # e.g. a character the served model lacks
    assert summary["steps_run"] == 4 and summary["lines"] + summary["held_back_lines"] + left_out == 24
    assert summary["held_back_lines"] == len(read_labels(tmp_path / "run" / "held_back")) > 0
    assert summary["held_back_before"] is not None and summary["best_step"] in (0, 2, 4)
    assert summary["held_back_after"] >= summary["held_back_before"]
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "dev_general_char_accuracy" in r]
    assert [r["step"] for r in evaluations] == [0, 2, 4] and evaluations[0]["dev_alpha"] == 0.0
    assert {r["dev_alpha"] for r in evaluations[1:]} <= set(adapt.ALPHAS)
    # what is kept reads the general lines (never trained on) within the margin of the start
    assert summary["general_before"] == evaluations[0]["dev_general_char_accuracy"]
    assert summary["alpha"] == 0.0 or summary["general_after"] >= summary["general_before"] - 0.005
    assert len(read_labels(tmp_path / "run" / "general")) == 12
    adapted = Recognizer(tmp_path / "run" / "adapted.onnx", threads=1)
    assert adapted.spec.name == "ppocrv6-tiny-rec-adapted"
    # every batch: half the dataset's lines, half replayed ones, the same for the same step
    run = adapt.AdaptRun(replay, [{"trusted": True}] * 5, 0.5, tmp_path / "x", TINY, 4, 1e-3, {"ctc": 1}, 2, 0.9, None)
    first, again = next(run.groups()), next(run.groups())
    assert first == again and sum(i >= len(run.replay) for i in first) == 2
    # given more steps, the finished run goes on from its checkpoint, and stops as soon as one more
    # evaluation than it has had is not better than the best
    stale = json.loads((tmp_path / "run" / "best.json").read_text())["stale"]
    more = adapt.adapt(dot_lines / "adapt", tmp_path / "run", TINY, SMALL, replay, steps=40, patience=stale + 1, **kw)
    assert 4 < more["steps_run"] < 40 and more["stopped_early"] is True
    assert more["held_back_before"] == summary["held_back_before"]


def test_a_dataset_with_no_held_back_line_trains_every_step_and_exports_the_last_package(
    tmp_path, dot_lines, monkeypatch
):
    monkeypatch.setattr(warmstart, "SHARD", 4)
    folder = tmp_path / "d"
    keep = [(rel, text) for rel, text in read_labels(dot_lines / "adapt") if not held_back(rel)][:3]
    for rel, _ in keep:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dot_lines / "adapt" / rel, folder / rel)
    write_labels(folder, keep)
    kw = dict(replay_lines=8, general_lines=8, batch_size=2, lr=1e-3, eval_every=1, patience=1, seed=2, threads=1)
    kw["log"] = lambda _: None
    summary = adapt.adapt(folder, tmp_path / "run", TINY, SMALL, tmp_path / "replay", steps=3, **kw)
    assert summary["held_back_lines"] == 0 and summary["steps_run"] == 3 and summary["stopped_early"] is False
    assert summary["held_back_before"] is None and summary["best_step"] == 3 and summary["guard_margin"] == 0.05
    # by default the package is the adapted model guarded by its start (distill/pair.py)
    package = tmp_path / "run" / "adapted.onnx"
    assert Recognizer(package, threads=1).spec.name == "ppocrv6-tiny-rec-adapted-guarded"
    guard = json.loads(ModelSpec.from_file(package).extra["guard"])
    assert guard == {"start": str(TINY), "start_sha256": file_sha256(TINY), "margin": 0.05}


def test_replayed_lines_learn_the_starting_models_own_reading_and_nothing_at_the_start(tmp_path, monkeypatch):
    monkeypatch.setattr(warmstart, "SHARD", 4)
    replay = warmstart.build_cache(tmp_path / "replay", 8, TINY, SMALL, seed=4, log=lambda _: None)
    run = adapt.AdaptRun(replay, [], 0.0, tmp_path / "run", TINY, 4, 1e-3, {"ctc": 1.0, "kd": 1.0}, 4, 0.9, None)
    batch = run.batch_for([0, 1, 2, 3])
    assert not batch["readable"].any() and batch["kd_on"].all()  # no CTC on replayed lines, KD on all
    # the targets are the starting model's: at the start the student already matches them
    _, start = warmstart.warm_loss(run.model, batch, run.weights)
    assert start["ctc"] == 0 and start["kd"] < 0.1  # what is left: the top-k targets' renormalisation
    teacher_run = adapt.AdaptRun(
        replay, [], 0.0, tmp_path / "t", TINY, 4, 1e-3, {"ctc": 1.0, "kd": 1.0}, 4, 0.9, None, anchor="teacher"
    )
    _, teacher = warmstart.warm_loss(teacher_run.model, teacher_run.batch_for([0, 1, 2, 3]), teacher_run.weights)
    assert teacher["kd"] > 3 * start["kd"]  # the teacher reads them otherwise


def _replay_and_dataset(tmp_path, dot_lines, monkeypatch):
    """(a 4-line replay cache, the student's spec, the dot-matrix dataset's learnable lines)."""
    monkeypatch.setattr(warmstart, "SHARD", 4)
    replay = warmstart.build_cache(tmp_path / "replay", 4, TINY, SMALL, seed=5, log=lambda _: None)
    spec = ModelSpec.from_file(TINY)
    axis = warmstart.CharAxis.build(spec, ModelSpec.from_file(SMALL))
    items, _ = adapt.dataset_lines(dot_lines / "adapt", axis, spec, warmstart.OnnxTeacher(SMALL, axis))
    return replay, spec, items


def test_a_dataset_line_is_seen_a_little_differently_at_every_step(tmp_path, dot_lines, monkeypatch):
    replay, spec, items = _replay_and_dataset(tmp_path, dot_lines, monkeypatch)
    run = adapt.AdaptRun(replay, items[:3], 0.5, tmp_path / "run", TINY, 4, 1e-3, {"ctc": 1.0, "kd": 1.0}, 5, 0.9, None)
    first = run.batch_for([len(run.replay), 0])
    again = run.batch_for([len(run.replay), 0])
    assert torch.equal(first["images"], again["images"])  # the same step sees the same line
    run.step += 1
    later = run.batch_for([len(run.replay), 0])
    line = lambda b: b["images"][0, :, :, : b["lengths"][0] * spec.width_multiple]  # noqa: E731
    assert line(first).shape != line(later).shape or not torch.equal(line(first), line(later))
    # the label stays, the line's length in steps follows its new width, the replayed line is as cached
    assert torch.equal(first["labels"][: len(items[0]["labels"])], items[0]["labels"].long())
    assert int(first["lengths"][0]) * spec.width_multiple <= first["images"].shape[3]
    assert first["trusted"].tolist() == [True, False]
    assert torch.equal(
        first["images"][1, :, :, : run.items[0]["images"].shape[2]],
        warmstart.normalise(run.items[0]["images"][None], spec)[0],
    )


def test_a_dataset_line_can_be_seen_beside_another_with_both_labels(tmp_path, dot_lines, monkeypatch):
    replay, spec, items = _replay_and_dataset(tmp_path, dot_lines, monkeypatch)
    args = (tmp_path / "run", TINY, 4, 1e-3, {"ctc": 1.0, "kd": 1.0}, 5, 0.9, None)
    run = adapt.AdaptRun(replay, items[:3], 0.5, *args, augment=0.0, join=1.0)
    first = len(run.replay)
    seen = run.seen(first)
    texts = [it["texts"] for it in items[:3]]
    assert seen["texts"].startswith(texts[0]) and seen["texts"][len(texts[0]) :] in texts
    other = items[texts.index(seen["texts"][len(texts[0]) :])]
    assert torch.equal(seen["labels"], torch.cat([items[0]["labels"], other["labels"]]))
    width = items[0]["images"].shape[2] + other["images"].shape[2]
    assert seen["images"].shape[2] >= 0.6 * width  # both lines (margins trimmed, squeezed by at most 15 %)
    assert seen["top_idx"].shape[0] == seen["images"].shape[2] // spec.width_multiple
    assert run.items[first]["texts"] == texts[0]  # the dataset itself is unchanged
    plain = adapt.AdaptRun(replay, items[:3], 0.5, *args, augment=0.5).seen(first)
    assert plain["texts"] == texts[0] and torch.equal(plain["labels"], items[0]["labels"])


def _pieces_of(text: str, lines: list[str], longest: int = 4) -> bool:
    """Whether ``text`` is substrings of ``lines`` (each at most ``longest`` characters) in a row."""
    ok = [True] + [False] * len(text)
    for end in range(1, len(text) + 1):
        ok[end] = any(ok[a] and any(text[a:end] in line for line in lines) for a in range(max(0, end - longest), end))
    return ok[-1]


def test_a_dataset_line_can_be_a_new_line_set_from_pieces_of_the_datasets_lines(tmp_path, dot_lines, monkeypatch):
    replay, spec, items = _replay_and_dataset(tmp_path, dot_lines, monkeypatch)
    args = (tmp_path / "run", TINY, 4, 1e-3, {"ctc": 1.0, "kd": 1.0}, 5, 0.9, None)
    run = adapt.AdaptRun(replay, items[:6], 0.5, *args, augment=0.0, join=0.0, mix=1.0)
    assert len(run.glyphs) >= 5  # the teacher aligns the labels of (nearly) every line
    first, texts = len(run.replay), [it["texts"] for it in items[:6]]
    new = set()
    for step in range(4):
        run.step = step
        seen = run.seen(first)
        assert len(seen["texts"]) >= len(texts[0]) and _pieces_of(seen["texts"], texts)
        assert seen["labels"].tolist() == run.axis.encode(seen["texts"])
        assert seen["images"].shape[1] == spec.input_height
        assert seen["top_idx"].shape[0] == seen["images"].shape[2] // spec.width_multiple >= len(seen["labels"])
        new.add(seen["texts"])
    assert len(new - set(texts)) >= 3  # lines the dataset does not hold
    assert run.items[first]["texts"] == texts[0]  # the dataset itself is unchanged
    assert adapt.AdaptRun(replay, items[:6], 0.5, *args).glyphs is None


def test_with_dataset_kd_a_dataset_line_also_learns_the_teachers_reading_of_it_as_the_step_sees_it(
    tmp_path, dot_lines, monkeypatch
):
    replay, spec, items = _replay_and_dataset(tmp_path, dot_lines, monkeypatch)
    args = (tmp_path / "run", TINY, 4, 1e-3, {"ctc": 1.0, "kd": 1.0}, 5, 0.9, None)
    run = adapt.AdaptRun(replay, items[:3], 0.5, *args, dataset_kd=0.5)
    first = len(run.replay)
    seen = run.seen(first)
    teacher = warmstart.OnnxTeacher(SMALL, run.axis, feature=None)
    idx, p, _ = teacher(seen["images"].numpy(), items[0]["top_idx"].shape[1])
    assert torch.equal(seen["top_idx"], torch.from_numpy(idx))  # the teacher read this very image
    assert torch.allclose(seen["top_p"].float(), torch.from_numpy(p).float())
    batch = run.batch_for([0, first])
    assert warmstart.teacher_reads(seen)  # a clear dot-printed line: the teacher reads it
    assert batch["kd_on"].tolist() == [1.0, 0.5]  # the replayed line learns the anchor's reading
    steps = min(idx.shape[0], batch["top_idx"].shape[1])
    assert torch.equal(batch["top_idx"][1, :steps], torch.from_numpy(idx[:steps]).long())
    # without it, the dataset line learns its label alone, and its targets are blank
    plain = adapt.AdaptRun(replay, items[:3], 0.5, *args)
    assert plain.teach is None
    assert not plain.seen(first)["top_idx"].any()
    assert plain.batch_for([0, first])["kd_on"].tolist() == [1.0, 0.0]


def test_a_later_evaluation_within_the_noise_band_is_kept_and_a_clear_drop_is_not(tmp_path, monkeypatch):
    """With no band only a better evaluation is kept; with a band (two standard errors on 400
    characters: about 2 points near 95 %), one no more than that below the best is kept too (the
    best stays the one to beat), and one further below is not."""
    assert adapt._band(0.0, 0.9, 400) == 0.0 and adapt._band(1.0, None, 400) == 0.0
    assert adapt._band(2.0, 0.9, 400) == pytest.approx(2 * (0.9 * 0.1 / 400) ** 0.5)
    assert adapt._band(2.0, 0.95, 400) == pytest.approx(0.0218, abs=1e-4)
    held = tmp_path / "held"
    write_labels(held, [("a.png", "x" * 300), ("b.png", "y" * 100)])
    out = tmp_path / "run"
    out.mkdir()
    logged = []
    run = type("Run", (), {"out": out, "step": 0, "metrics": logged.append, "log": lambda self, _: None})()
    package = tmp_path / "p.onnx"

    def evaluate(step, accuracy, best, within):
        package.write_text(str(step))
        monkeypatch.setattr(adapt, "_candidates", lambda *a: iter([(0.5, accuracy, 0.9, package)]))
        run.step = step
        return adapt._evaluate(run, held, tmp_path / "general", best, 0.005, within, 400)

    for within, kept in ((0.0, [True, True, False, False, False]), (2.0, [True, True, True, False, True])):
        best = {}
        got = [evaluate(s, a, best, within) for s, a in ((0, 0.90), (200, 0.95), (400, 0.94), (600, 0.92), (800, 0.95))]
        assert got == kept
        assert best["top"] == 0.95 and (out / "best.onnx").read_text() == ("800" if within else "200")
        assert best["step"] == (800 if within else 200)
