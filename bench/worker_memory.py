"""Where an OCR worker's memory goes: RSS after each part is loaded, then while it reads lines and
pages of every size from several threads, under each allocator setting.

    .venv/bin/python -m bench.worker_memory                    # 1,500 images, 4 threads, every setting
    .venv/bin/python -m bench.worker_memory --images 300 --settings arena-off

Each setting runs in a fresh process (the serving pipeline of engine/served.py, cascade on, like a
worker with the default settings): RSS after imports, after the recogniser, the detector and the
direction classifier, the cascade's recogniser and the character LM; then after every tenth of the
images (new random fields as lines, 8-line pages, one in five a page). The growth printed is from
the second reading of the run (after warm-up) to the last.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

from workers.launcher import JEMALLOC_CONF
from workers.recycle import rss_mib

ROOT = Path(__file__).resolve().parent.parent
JEMALLOC = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
SETTINGS = {
    "arena-on": {"OCR_ORT_ARENA": "1"},
    "arena-off": {"OCR_ORT_ARENA": "0"},
    "arena-off, MALLOC_ARENA_MAX=2": {"OCR_ORT_ARENA": "0", "MALLOC_ARENA_MAX": "2"},
    "arena-off, jemalloc": {"OCR_ORT_ARENA": "0", "LD_PRELOAD": JEMALLOC},
    "arena-off, jemalloc, quick decay": {"OCR_ORT_ARENA": "0", "LD_PRELOAD": JEMALLOC, "MALLOC_CONF": JEMALLOC_CONF},
    "arena-on, jemalloc, quick decay": {"OCR_ORT_ARENA": "1", "LD_PRELOAD": JEMALLOC, "MALLOC_CONF": JEMALLOC_CONF},
    "arena-off, jemalloc, never purged": {
        "OCR_ORT_ARENA": "0",
        "LD_PRELOAD": JEMALLOC,
        "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1",
    },
}


def _load(stages: list) -> tuple:
    from engine.batcher import LineBatcher
    from engine.decoder import LineDecoder
    from engine.detect import DirectionClassifier, PageReader, TextDetector
    from engine.inference import Recognizer
    from engine.lm import CharLM
    from engine.modelpkg import REFERENCE_FILES, SERVED_DEFAULT
    from engine.served import CASCADE_BELOW, DECODER, LM_FILE

    models = ROOT / "models"
    stages.append(("imports (numpy, OpenCV, ONNX Runtime, engine)", rss_mib()))
    rec = Recognizer(models / SERVED_DEFAULT, threads=1)
    stages.append(("+ served recogniser", rss_mib()))
    reader = PageReader(
        TextDetector(models / REFERENCE_FILES["ppocrv6-tiny-det"], threads=1),
        DirectionClassifier(models / REFERENCE_FILES["ppocr-mobile-cls"], threads=1),
    )
    stages.append(("+ detector and direction classifier", rss_mib()))
    strong = Recognizer(models / REFERENCE_FILES["ppocrv6-small"], threads=1)
    stages.append(("+ cascade recogniser (PP-OCRv6 small)", rss_mib()))
    lm = CharLM.load(str(models / LM_FILE))
    stages.append(("+ character LM", rss_mib()))
    batcher = LineBatcher(
        lambda: rec, decoder=LineDecoder(DECODER, lm), cascade=lambda: strong, cascade_below=CASCADE_BELOW
    )
    return batcher, reader


def child(images: int, threads: int, seed: int) -> None:
    """One setting, in this process: prints one JSON object."""
    from bench import api_load
    from engine.limits import ImageLimits
    from engine.pipeline import recognize_bytes

    stages: list = []
    batcher, reader = _load(stages)
    rng = random.Random(seed)
    work = [(api_load.page_image if rng.random() < 0.2 else api_load.line_image)(i, rng) for i in range(images)]
    lock = threading.Lock()
    done = [0]
    trend: list[tuple[int, float]] = []
    step = max(1, images // 10)

    def serve() -> None:
        while True:
            with lock:
                if not work:
                    return
                data = work.pop()
            recognize_bytes(data, ImageLimits(), batcher, "mem", reader=reader)
            with lock:
                done[0] += 1
                if done[0] % step == 0:
                    trend.append((done[0], rss_mib()))

    started = time.monotonic()
    pool = [threading.Thread(target=serve) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    print(json.dumps({"stages": stages, "trend": trend, "seconds": time.monotonic() - started}))


def run_setting(name: str, images: int, threads: int, seed: int) -> dict:
    env = dict(os.environ, **SETTINGS[name], PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "bench.worker_memory", "--child", "--images", str(images)]
    cmd += ["--threads", str(threads), "--seed", str(seed)]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(results: dict[str, dict]) -> None:
    names = list(results)
    print("\n| part loaded | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for k, (stage, _) in enumerate(next(iter(results.values()))["stages"]):
        print(f"| {stage} | " + " | ".join(f"{results[n]['stages'][k][1]:.0f} MiB" for n in names) + " |")
    print("\n| images read | " + " | ".join(names) + " |")
    print("| --- |" + " --- |" * len(names))
    for k, (count, _) in enumerate(next(iter(results.values()))["trend"]):
        print(f"| {count} | " + " | ".join(f"{results[n]['trend'][k][1]:.0f}" for n in names) + " |")
    print("\n| setting | after warm-up → end | growth | seconds |")
    print("| --- | --- | --- | --- |")
    for name, res in results.items():
        warm, end = res["trend"][1][1], res["trend"][-1][1]
        print(f"| {name} | {warm:.0f} → {end:.0f} MiB | {(end - warm) / warm:+.1%} | {res['seconds']:.0f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.images, args.threads, args.seed)
        return 0
    chosen = [s for s in args.settings if "LD_PRELOAD" not in SETTINGS[s] or Path(JEMALLOC).exists()]
    results = {}
    for name in chosen:
        print(f"{name} ...", flush=True)
        results[name] = run_setting(name, args.images, args.threads, args.seed)
    report(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
