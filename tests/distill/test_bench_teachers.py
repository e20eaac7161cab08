"""bench/teachers.py: every teacher timed on the same rendered lines, against the first one."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "models" / "reference" / "ppocrv6_tiny_rec.onnx"
STUDENT = ROOT / "models" / "student.onnx"


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("teachers")


def test_it_reports_each_teachers_cost_coverage_and_kd_share(bench, capsys):
    argv = [
        "--teacher",
        f"tiny={TINY}",
        "--teacher",
        f"ours={STUDENT}",
        "--batches",
        "1",
        "--batch-size",
        "3",
        "--repeat",
        "1",
    ]
    assert bench.main(argv) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["teacher"] for r in rows] == ["tiny", "ours"]
    assert rows[0]["x_baseline"] == 1.0 and all(r["ms_per_batch_p50"] > 0 for r in rows)
    assert rows[1]["coverage"] == 1.0 and rows[1]["kd_line_share"] == 1.0  # our own charset covers every line
    assert 0.8 < rows[0]["coverage"] < 1.0 and 0 <= rows[0]["kd_line_share"] <= 1


def test_a_teacher_must_be_a_label_and_an_existing_file(bench):
    with pytest.raises(SystemExit):
        bench.main(["--teacher", "no-label"])
    with pytest.raises(SystemExit):
        bench.main(["--teacher", "x=models/none.onnx"])
