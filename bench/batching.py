"""Throughput of the OCR worker's recognition path with and without dynamic batching.

Simulates concurrent requests inside one worker process: T task threads, each recognising
single-line images one after another through a LineBatcher, with batching off (max batch 1)
and on (the defaults), in the same process on the same lines. Prints lines/s medians over
repeats and the ratio.

    .venv/bin/python -m bench.batching [--model models/reference/ppocrv4_mobile_rec.onnx]
        [--threads-ort 2] [--tasks 8] [--lines 96] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from engine.batcher import LineBatcher
from engine.inference import Recognizer
from engine.modelpkg import REFERENCE_FILES

TEXTS = [
    "购买方名称：上海明远科技有限公司",
    "纳税人识别号：91310115MA1K4XYZ2Q",
    "开票日期：2026年11月26日",
    "价税合计（大写）壹仟贰佰捌拾元整",
    "金额 1,132.74 税额 147.26",
    "地址：北京市朝阳区建国路88号",
    "Invoice No. 04452317",
    "电话 021-68881234",
    "备注：含运费",
    "单价 ¥56.00",
]


def render(text: str, size: int = 30) -> np.ndarray:
    font = ImageFont.truetype("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", size, index=2)
    img = Image.new("RGB", (int(font.getlength(text)) + 24, int(size * 1.6)), "white")
    ImageDraw.Draw(img).text((12, size * 0.2), text, font=font, fill="black")
    return np.asarray(img)


def run(model: Recognizer, crops: list[np.ndarray], tasks: int, max_batch: int, wait_ms: float, ratio: float) -> float:
    batcher = LineBatcher(lambda: model, max_batch=max_batch, max_wait_ms=wait_ms, max_width_ratio=ratio)
    chunks = [crops[i::tasks] for i in range(tasks)]

    def worker(chunk):
        for crop in chunk:
            batcher.recognize([crop], request_id=str(id(crop)), timeout=120)

    threads = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(crops) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=f"models/{REFERENCE_FILES['ppocrv4-mobile']}")
    parser.add_argument("--threads-ort", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--lines", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--wait-ms", type=float, default=15.0)
    parser.add_argument("--ratio", type=float, default=1.5, help="max width ratio inside one run")
    args = parser.parse_args()
    model = Recognizer(args.model, threads=args.threads_ort)
    crops = [render(TEXTS[i % len(TEXTS)]) for i in range(args.lines)]
    run(model, crops[:8], args.tasks, 8, 5, args.ratio)  # warm-up
    unbatched, batched = [], []
    for _ in range(args.repeats):
        unbatched.append(run(model, crops, args.tasks, 1, 0, args.ratio))
        batched.append(run(model, crops, args.tasks, 32, args.wait_ms, args.ratio))
    u, b = statistics.median(unbatched), statistics.median(batched)
    print(f"model {model.label}, ORT threads {args.threads_ort}, {args.tasks} concurrent tasks, {args.lines} lines")
    print(f"unbatched (max batch 1):        {u:7.1f} lines/s (median of {args.repeats})")
    print(
        f"batched (max 32, wait {args.wait_ms:g} ms, width ratio {args.ratio:g}): {b:7.1f} lines/s (median of {args.repeats})"
    )
    print(f"ratio batched/unbatched:        {b / u:7.2f}")


if __name__ == "__main__":
    main()
