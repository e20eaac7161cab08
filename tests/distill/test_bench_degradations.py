import json
from pathlib import Path

import pytest

from distill.augment import PIPELINE

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "models" / "reference" / "ppocrv4_mobile_rec.onnx"


@pytest.mark.skipif(not REFERENCE.exists(), reason="`make models` builds the reference recogniser")
def test_degradations_bench_reads_the_same_lines_under_every_step(capsys, bench_script):
    bench = bench_script("degradations")
    # the same texts and layouts under every condition
    sets = bench.render_sets(3, 505)
    assert list(sets) == ["clean", *(fn.__name__ for fn, _ in PIPELINE)]
    assert all([t for _, t in rows] == [t for _, t in sets["clean"]] for rows in sets.values())

    assert bench.main(["--model", f"ref={REFERENCE}", "--count", "3"]) == 0
    out = capsys.readouterr().out.splitlines()
    result = json.loads(out[0])
    assert result["label"] == "ref" and set(result["char_accuracy"]) == set(sets)
    assert result["char_accuracy"]["clean"] >= 0.8  # the reference reads clean training-split lines
    assert sum(line.startswith("| ") for line in out) == 2 + len(sets)  # header, rule, a row per condition
