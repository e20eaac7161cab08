import json

import pytest
import torch

from distill.train import run_training


def _records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_a_lengthened_run_resumes_and_follows_the_new_learning_rate(tmp_path, charset):
    """Resuming with more steps and another --lr continues from the checkpoint on a fresh
    one-cycle schedule over the new total, peaking at the new rate (not the first run's)."""
    common = dict(arch="student", run_dir=tmp_path, charset=charset, batch_size=2, workers=0, eval_every=10**6,
                  progress=False)
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
