import json

import pytest
import torch

from distill.train import run_training


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_lengthened_run_resumes_and_follows_the_new_learning_rate(tmp_path, charset):
    """Resuming with more steps and another --lr continues from the checkpoint on a fresh
    one-cycle schedule over the new total, peaking at the new rate (not the first run's)."""
    common = dict(
        arch="student", run_dir=tmp_path, charset=charset, batch_size=2, workers=0, eval_every=10**6, progress=False
    )
    run_training(steps=2, lr=1e-3, **common)
    run_training(steps=4, lr=5e-2, **common)
    records = _records(tmp_path)
    starts = [r for r in records if r.get("event") == "start"]
    assert [s["step"] for s in starts] == [0, 2]
    state = torch.load(tmp_path / "last.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 4
    group = state["optimizer"]["param_groups"][0]
    assert group["max_lr"] == pytest.approx(5e-2) and group["initial_lr"] == pytest.approx(5e-3)
    assert state["scheduler"]["total_steps"] == 4


def test_a_run_scores_out_of_distribution_folders_at_every_evaluation(tmp_path, charset, line_dir):
    """`--eval-data`: each folder's sample is scored beside the generator's dev lines, under its
    own name and in the mean that the curves plot."""
    import shutil

    other = tmp_path / "photo"
    shutil.copytree(line_dir, other)
    run_training(
        arch="student",
        run_dir=tmp_path / "run",
        charset=charset,
        steps=2,
        batch_size=2,
        lr=1e-3,
        workers=0,
        eval_every=1,
        progress=False,
        eval_data=[line_dir, other],
        eval_lines=4,
    )
    devs = [r for r in _records(tmp_path / "run") if "dev_char_accuracy" in r]
    assert [r["step"] for r in devs] == [1, 2]
    name = line_dir.name
    for r in devs:
        assert set(r) >= {f"ood_{name}", "ood_photo", "ood_char_accuracy"}
        assert 0 <= r["ood_photo"] <= 1 and r["ood_photo"] == pytest.approx(r[f"ood_{name}"])
        assert r["ood_char_accuracy"] == pytest.approx((r["ood_photo"] + r[f"ood_{name}"]) / 2, abs=1e-5)


def test_the_evaluation_sample_spreads_over_the_folder_and_skips_uncovered_lines(tmp_path, charset, line_dir):
    import shutil

    from distill.train import eval_sets

    rows = (line_dir / "labels.tsv").read_text(encoding="utf-8").splitlines()
    folder = tmp_path / "mixed"
    shutil.copytree(line_dir, folder)
    first = rows[0].split("\t")[0]
    (folder / "labels.tsv").write_text(
        "\n".join(rows + [f"{first}\t\U0001f600 not in the charset"]) + "\n", encoding="utf-8"
    )
    sets = eval_sets(charset, [folder], per_set=100, batch_size=4)
    texts = [t for b in sets["mixed"] for t in b["texts"]]
    assert sorted(texts) == sorted(r.split("\t")[1] for r in rows)  # every covered line, the uncovered one left out
    widths = [b["images"].shape[-1] for b in sets["mixed"]]
    assert widths == sorted(widths)
    assert len(eval_sets(charset, [folder], per_set=3)["mixed"][0]["texts"]) == 3
    with pytest.raises(ValueError, match="second folder"):
        eval_sets(charset, [folder, folder])
    (folder / "labels.tsv").write_text(f"{first}\t\U0001f600\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no line the charset covers"):
        eval_sets(charset, [folder])
