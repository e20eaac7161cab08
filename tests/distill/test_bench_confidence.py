import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
STUDENT = ROOT / "models" / "student.onnx"


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("confidence")


def test_auc_ranks_right_lines_above_wrong_ones(bench):
    assert bench.auc(np.array([0.9, 0.95]), np.array([0.5, 0.6])) == 1.0
    assert bench.auc(np.array([0.5]), np.array([0.9])) == 0.0
    assert bench.auc(np.array([0.7, 0.7]), np.array([0.7])) == 0.5


def test_it_counts_every_line_once_and_flags_by_threshold(bench, line_dir, capsys):
    assert bench.main(["--data", str(line_dir), "--model", f"s={STUDENT}", "--threshold", "1.01"]) == 0
    result = json.loads(capsys.readouterr().out.splitlines()[0])
    assert result["right"] + result["wrong"] == 6
    # every confidence is below 1.01: each group is flagged whole
    assert all(v == 1.0 for k, v in result["flagged"]["1.01"].items() if result[k])
