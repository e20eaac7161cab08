"""bench/interpolation.py: a finished warm run exported at several interpolations, scored per line,
and the choice checked on held-out halves."""

import json

import cv2
import numpy as np

from distill import warmstart
from distill.data import write_labels
from distill.evaluate import clean_for_scoring, edit_distance, load_recognizer, read_bgr
from engine.modelpkg import REFERENCE_FILES
from tests.conftest import ROOT

TINY = ROOT / "models" / REFERENCE_FILES["ppocrv6-tiny"]
SMALL = ROOT / "models" / REFERENCE_FILES["ppocrv6-small"]


def test_interpolation_zero_reads_as_the_start_and_the_held_out_check_runs(tmp_path, monkeypatch, capsys, bench_script):
    monkeypatch.setattr(warmstart, "SHARD", 4)
    cache = warmstart.build_cache(tmp_path / "cache", 4, TINY, SMALL, seed=5, log=lambda _: None)
    run = tmp_path / "run"
    warmstart.train(cache, run, TINY, steps=2, batch_size=2, lr=1e-3, threads=1, ema_decay=0.0, log=lambda _: None)
    data = tmp_path / "lines"
    (data / "lines").mkdir(parents=True)
    rows, draws = [], warmstart.LineDraws(seed=9, augraphy_share=0.0)
    for i in range(4):
        rgb, text, _ = draws(i)
        cv2.imwrite(str(data / "lines" / f"{i}.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
        rows.append((f"lines/{i}.png", text))
    write_labels(data, rows)

    bench = bench_script("interpolation")
    argv = ["--run", str(run), "--student", str(TINY), "--teacher", str(SMALL), "--alphas", "0,1", "--offsets", "0"]
    assert bench.main([*argv, "--data", str(data)]) == 0
    out = capsys.readouterr().out.splitlines()
    points = [json.loads(line) for line in out if line.startswith("{")]
    assert [(p["interpolate"], p["blank_offset"]) for p in points] == [(0.0, 0.0), (1.0, 0.0)]
    # interpolation 0 is the starting model: it reads what the start reads
    rec = load_recognizer(TINY)
    errors = total = 0
    for rel, text in rows:
        gt = clean_for_scoring(text)
        errors += edit_distance(gt, clean_for_scoring(read_bgr(rec, cv2.imread(str(data / rel)))))
        total += len(gt)
    assert points[0]["lines"] == round(100 * (1 - errors / total), 2)
    assert sum("held out" in line for line in out) == 4  # two points, ranked on each half
