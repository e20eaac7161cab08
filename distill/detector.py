"""Training our own text detector (``distill.models.db``) on synthetic pages, distilled from the
imported one, and its export as an ``ocr-det/1`` package.

Data: pages from ``distill.pages.make_page`` in the training faces (``full_faces``) with training
texts, as ``bench/pages.py`` draws its training-face sets, but from page seeds of their own
(``TRAIN_SEED_BASE`` up; the benchmark's pages are seeds 100-499, the in-run dev pages
``DEV_SEED_BASE`` up), scanned or photographed. Each page is prepared for the network by the
engine's own ``prepare_page`` (the serving preparation, its size rule's pixels jittered a little so
text comes at more sizes), now and then turned by a quarter, half or three quarters, and cut into
random square crops.

Targets: the imported detector's probability map on the same prepared input (KD: BCE + dice
against the soft map), and the renderer's line boxes (``Page.quads``) shrunk DB-style into a text
region map (GT: BCE + dice). ``DetectorLoss`` returns the named terms and their weighted sum.

A run writes ``RUN_DIR/last.pt`` (model, optimiser and schedule: the same command resumes it)
every ``checkpoint_every`` steps and at the end, and ``RUN_DIR/metrics.jsonl`` as the recogniser
runs do (loss terms every 20 steps; ``dev_det_f1`` / precision / recall of whole-page detection
on fixed dev pages against the renderer's boxes every ``eval_every`` steps).
"""

from __future__ import annotations

import math
import signal
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset

from engine.detect import DetSpec, TextDetector, db_boxes, prepare_page
from engine.modelpkg import REFERENCE_FILES

from .export import onnx_gap
from .models.db import build_detector

TRAIN_SEED_BASE = 1_000_000  # page seeds of training pages: TRAIN_SEED_BASE + seed * 10**7 + page index
DEV_SEED_BASE = 900_000  # the in-run dev pages
DEFAULT_TEACHER = f"models/{REFERENCE_FILES['ppocrv6-tiny-det']}"
# the renderer's ink boxes shrink to this ratio DB-style (offset = area * (1 - r^2) / perimeter):
# 0.63 leaves a long line's band at 0.4 of its ink height, the band the imported detector's map
# holds above its 0.2 threshold (measured on scanned training pages), so the same unclip ratio fits
GT_SHRINK = 0.63
CAPTURES = ("scan", "photo")


def detector_spec(teacher: str | Path | None = None, name: str = "db-student") -> DetSpec:
    """The package settings: the teacher's own (its preparation is what the student learns on),
    or, without one, those ``make models`` gives the imported PP-OCRv6 tiny detector."""
    if teacher:
        spec = TextDetector(teacher, threads=1).spec
        return replace(spec, name=name, extra={})
    from .export import DETECTORS

    return DetSpec(name=name, **{"limit_side": 960, **DETECTORS["ppocrv6-tiny-det"].settings})


# --------------------------------------------------------------------------- targets


def shrink_quad(quad: np.ndarray, ratio: float = GT_SHRINK, margin: float = 0.0) -> np.ndarray:
    """A near-rectangular quad (tl, tr, br, bl) moved inwards on every side by DB's offset
    area * (1 - ratio^2) / perimeter (under half its shorter side), plus ``margin``; at most
    down to a line."""
    q = np.asarray(quad, np.float64).reshape(4, 2)
    x, y = q[:, 0], q[:, 1]
    area = 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    perimeter = float(np.linalg.norm(q - np.roll(q, -1, axis=0), axis=1).sum())
    if perimeter <= 0:
        return q.astype(np.float32)
    u = (q[1] - q[0]) + (q[2] - q[3])
    v = (q[3] - q[0]) + (q[2] - q[1])
    d = min(area * (1 - ratio**2) / perimeter + margin, 0.25 * min(np.linalg.norm(u), np.linalg.norm(v)))
    u, v = u / max(np.linalg.norm(u), 1e-9), v / max(np.linalg.norm(v), 1e-9)
    moves = np.array([u + v, -u + v, -u - v, u - v])
    return (q + d * moves).astype(np.float32)


def text_map(quads, shape: tuple[int, int], ratio: float = GT_SHRINK) -> np.ndarray:
    """A float32 map of ``shape``: 1 on the pixels whose centres lie inside each quad shrunk by
    ``ratio``, 0 elsewhere (``fillPoly`` fills from edge to edge, hence half a pixel less)."""
    out = np.zeros(shape, np.uint8)
    polys = [np.round(shrink_quad(q, ratio, margin=0.5) * 8).astype(np.int32) for q in quads]
    if polys:
        cv2.fillPoly(out, polys, 1, lineType=cv2.LINE_8, shift=3)
    return out.astype(np.float32)


def _texts(rng: np.random.Generator, source):
    while True:
        yield source.sample(rng)


class PagePool:
    """Renders training (or dev) pages and prepares them: (input [3, H, W], teacher map or None,
    GT map, the page). Faces, texts and the teacher's session are made on first use, so a pool
    crosses to a data worker as its settings only."""

    def __init__(self, teacher: str | Path | None, spec: DetSpec, gt_shrink: float = GT_SHRINK):
        self.teacher_path, self.spec, self.gt_shrink = (str(teacher) if teacher else None), spec, gt_shrink
        self._ready = None

    def __getstate__(self):
        return {**self.__dict__, "_ready": None}

    def _setup(self):
        if self._ready is None:
            from engine.charset import load_charset

            from .fonts import faces_for
            from .pages import PAGE_WEIGHTS, full_faces
            from .text import TextSource

            source = TextSource(load_charset(), "train", min_len=4, max_len=30, weights=PAGE_WEIGHTS)
            teacher = TextDetector(self.teacher_path, threads=1) if self.teacher_path else None
            self._ready = (full_faces(faces_for("train")), source, teacher)
        return self._ready

    def page(self, seed: int, capture: str):
        from .pages import make_page

        faces, source, _ = self._setup()
        return make_page(_texts(np.random.default_rng(seed), source), faces, seed, capture)

    def prepared(self, seed: int, capture: str, limit_scale: float = 1.0, quarter_turns: int = 0):
        """The page of ``seed`` prepared at ``limit_scale`` times the size rule's pixels, turned
        ``quarter_turns`` times anticlockwise, with the teacher's map of that very input."""
        page = self.page(seed, capture)
        spec = replace(self.spec, limit_side=max(self.spec.size_multiple, int(self.spec.limit_side * limit_scale)))
        x = prepare_page(page.image, spec)[0]
        h, w = page.image.shape[:2]
        gt = text_map(
            [q * np.float32([x.shape[2] / w, x.shape[1] / h]) for q in page.quads], x.shape[1:], self.gt_shrink
        )
        x = np.ascontiguousarray(np.rot90(x, quarter_turns, axes=(1, 2)))
        gt = np.ascontiguousarray(np.rot90(gt, quarter_turns))
        teacher = self._setup()[2]
        soft = None if teacher is None else teacher.session.run(None, {teacher.input_name: x[None]})[0][0, 0]
        return x, soft, gt, page


def random_crop(arrays, size: int, rng: np.random.Generator):
    """The same ``size`` x ``size`` window of each [..., H, W] array, zero-padded where the
    page is smaller (0 is the normalised mean colour)."""
    h, w = arrays[0].shape[-2:]
    y = int(rng.integers(0, max(h - size, 0) + 1))
    x = int(rng.integers(0, max(w - size, 0) + 1))
    out = []
    for a in arrays:
        cut = a[..., y : y + size, x : x + size]
        pad = [(0, 0)] * (a.ndim - 2) + [(0, size - cut.shape[-2]), (0, size - cut.shape[-1])]
        out.append(np.pad(cut, pad))
    return out


class PageCrops(Dataset):
    """Item ``step``: the batch of that training step, the same whatever ran before it (a resumed
    run draws what the first would have): ``images`` [B, 3, crop, crop], ``teacher`` and ``gt``
    [B, 1, crop, crop], from ``ceil(B / crops_per_page)`` pages."""

    def __init__(
        self,
        pool: PagePool,
        steps: int,
        batch_size: int,
        crop: int,
        seed: int = 0,
        crops_per_page: int = 2,
        scale: tuple[float, float] = (0.8, 1.25),
        turn: float = 0.15,
    ):
        if crop % 32:
            raise ValueError("crop must be a multiple of 32")
        self.pool, self.steps, self.batch_size, self.crop, self.seed = pool, steps, batch_size, crop, seed
        self.crops_per_page, self.scale, self.turn = crops_per_page, scale, turn

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict:
        pages = math.ceil(self.batch_size / self.crops_per_page)
        images, soft, gt = [], [], []
        for j in range(pages):
            index = step * pages + j
            rng = np.random.default_rng((self.seed, index))
            capture = CAPTURES[int(rng.integers(len(CAPTURES)))]
            turns = int(rng.integers(1, 4)) if rng.random() < self.turn else 0
            x, t, g, _ = self.pool.prepared(
                TRAIN_SEED_BASE + self.seed * 10**7 + index, capture, float(rng.uniform(*self.scale)), turns
            )
            t = np.zeros_like(g) if t is None else t
            for _ in range(min(self.crops_per_page, self.batch_size - len(images))):
                cx, ct, cg = random_crop([x, t, g], self.crop, rng)
                images.append(cx)
                soft.append(ct[None])
                gt.append(cg[None])
        return {
            "images": torch.from_numpy(np.stack(images)),
            "teacher": torch.from_numpy(np.stack(soft)),
            "gt": torch.from_numpy(np.stack(gt)),
        }


# --------------------------------------------------------------------------- loss


def dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    inter = (prob * target).sum()
    return 1 - (2 * inter + eps) / (prob.sum() + target.sum() + eps)


class DetectorLoss(torch.nn.Module):
    """``total = kd_weight * kd + gt_weight * gt``; each term BCE + dice of the probability map
    against the teacher's soft map (kd) or the shrunk line boxes (gt). BCE against a soft map
    bottoms out at the map's own entropy, not at 0."""

    def __init__(self, kd_weight: float = 1.0, gt_weight: float = 1.0, eps: float = 1e-6):
        super().__init__()
        self.kd_weight, self.gt_weight, self.eps = kd_weight, gt_weight, eps

    def term(self, prob: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        p = prob.clamp(self.eps, 1 - self.eps)
        return F.binary_cross_entropy(p, target) + dice_loss(prob, target)

    def forward(self, prob: torch.Tensor, teacher: torch.Tensor | None, gt: torch.Tensor | None) -> dict:
        terms, total = {}, prob.new_zeros(())
        for name, weight, target in (("kd", self.kd_weight, teacher), ("gt", self.gt_weight, gt)):
            if weight and target is not None:
                terms[name] = self.term(prob, target)
                total = total + weight * terms[name]
        terms["total"] = total
        return terms


def detector_step(model, batch: dict, loss_fn: DetectorLoss) -> dict:
    return loss_fn(model(batch["images"]), batch.get("teacher"), batch.get("gt"))


# --------------------------------------------------------------------------- dev: whole pages


def quad_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float32).reshape(4, 2), np.asarray(b, np.float32).reshape(4, 2)
    inter = float(cv2.intersectConvexConvex(a, b)[0])
    union = abs(float(cv2.contourArea(a))) + abs(float(cv2.contourArea(b))) - inter
    return inter / union if union > 0 else 0.0


def match_counts(found, truth, iou: float = 0.5) -> tuple[int, int, int]:
    """(matched, found, true) with each true quad matched greedily to its best unmatched found one."""
    free, matched = list(range(len(found))), 0
    for t in truth:
        scores = [(quad_iou(found[i], t), i) for i in free]
        best = max(scores, default=(0.0, -1))
        if best[0] >= iou:
            free.remove(best[1])
            matched += 1
    return matched, len(found), len(truth)


def f_scores(counts) -> dict:
    matched, found, true = (sum(c[k] for c in counts) for k in range(3))
    precision, recall = matched / max(found, 1), matched / max(true, 1)
    return {"precision": precision, "recall": recall, "f1": 2 * precision * recall / max(precision + recall, 1e-9)}


def dev_pages(pool: PagePool, count: int) -> list:
    """``count`` fixed pages (half scanned, half photographed) from dev seeds: (input, page)."""
    out = []
    for i in range(count):
        x, _, _, page = pool.prepared(DEV_SEED_BASE + i, CAPTURES[i % len(CAPTURES)])
        out.append((x, page))
    return out


def page_quads(prob: np.ndarray, spec: DetSpec, page) -> list[np.ndarray]:
    h, w = page.image.shape[:2]
    return [q for q, _ in db_boxes(prob, spec, w / prob.shape[1], h / prob.shape[0], w, h)]


@torch.no_grad()
def evaluate_pages(model, pages, spec: DetSpec) -> dict:
    """Detection precision, recall and F1 (IoU 0.5 against the renderer's ink boxes) on ``pages``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    counts = []
    for x, page in pages:
        prob = model(torch.from_numpy(x)[None].to(device))[0, 0].cpu().numpy()
        counts.append(match_counts(page_quads(prob, spec, page), page.quads))
    model.train(was_training)
    return f_scores(counts)


def teacher_scores(pool: PagePool, pages) -> dict:
    teacher = pool._setup()[2]
    counts = [
        match_counts(
            page_quads(teacher.session.run(None, {teacher.input_name: x[None]})[0][0, 0], pool.spec, page), page.quads
        )
        for x, page in pages
    ]
    return f_scores(counts)


# --------------------------------------------------------------------------- the run


def load_detector(path: str | Path):
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build_detector(state["arch"])
    model.load_state_dict(state["model"])
    return model, state


def _worker_init(_):
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def crop_loader(data: PageCrops, start: int, workers: int) -> DataLoader:
    """The batches of steps ``start``.. in order; page rendering and the teacher run in
    ``workers`` spawned processes (0: in this one)."""
    return DataLoader(
        Subset(data, range(start, data.steps)),
        batch_size=None,
        shuffle=False,
        num_workers=workers,
        worker_init_fn=_worker_init if workers else None,
        multiprocessing_context="spawn" if workers else None,
        prefetch_factor=2 if workers else None,
    )


def _start(run_dir: Path, model, optimizer, scheduler, lr: float, steps: int, resume: bool):
    """(start step, scheduler): from ``run_dir/last.pt`` when resuming and it exists."""
    from .train import resume_from

    ckpt = run_dir / "last.pt"
    if resume and ckpt.exists():
        return resume_from(ckpt, model, optimizer, scheduler, None, lr, steps)
    return 0, scheduler


def _detector_config(
    arch, steps, batch_size, crop, lr, seed, teacher, kd_weight, gt_weight, crops_per_page, device, spec
) -> dict:
    """The run's settings, as logged at the start and kept in the checkpoint."""
    return {
        "arch": arch,
        "steps": steps,
        "batch_size": batch_size,
        "crop": crop,
        "lr": lr,
        "seed": seed,
        "teacher": str(teacher) if teacher else None,
        "kd_weight": kd_weight if teacher else 0.0,
        "gt_weight": gt_weight,
        "crops_per_page": crops_per_page,
        "device": device,
        "spec": spec.to_metadata(),
    }


def _detector_hooks(
    run_dir: Path, config: dict, model, optimizer, scheduler, dev, spec, log, start, eval_every, checkpoint_every
):
    """Step hooks that checkpoint to ``run_dir/last.pt`` and score the dev pages."""
    from .train import StepHooks, save_checkpoint

    return StepHooks(
        lambda step: save_checkpoint(
            run_dir / "last.pt",
            arch=config["arch"],
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            step=step,
            config=config,
        ),
        lambda: {f"dev_det_{k}": round(v, 5) for k, v in evaluate_pages(model, dev, spec).items()},
        log,
        start=start,
        steps=config["steps"],
        eval_every=eval_every if dev else 0,
        checkpoint_every=checkpoint_every,
    )


def _train_on_crops(model, pool, optimizer, scheduler, log, hooks, config: dict, *, start, workers, progress) -> None:
    """Run the steps from ``start`` to the end on fresh page crops."""
    from .train import train_steps

    steps = config["steps"]
    data = PageCrops(pool, steps, config["batch_size"], config["crop"], config["seed"], config["crops_per_page"])
    loss_fn = DetectorLoss(config["kd_weight"], config["gt_weight"])
    train_steps(
        model,
        crop_loader(data, start, workers),
        optimizer,
        scheduler,
        lambda batch: detector_step(model, batch, loss_fn),
        start_step=start,
        total_steps=steps,
        log=log,
        on_step=hooks.on_step,
        progress=progress,
    )


def run_detector_training(
    *,
    run_dir: str | Path,
    steps: int,
    batch_size: int = 4,
    crop: int = 640,
    lr: float = 2e-3,
    seed: int = 0,
    teacher: str | Path | None = DEFAULT_TEACHER,
    kd_weight: float = 1.0,
    gt_weight: float = 1.0,
    arch: str = "db_student",
    workers: int = 1,
    checkpoint_every: int = 200,
    eval_every: int = 500,
    dev_count: int = 8,
    crops_per_page: int = 2,
    weight_decay: float = 0.01,
    device: str = "cpu",
    resume: bool = True,
    progress: bool = True,
) -> Path:
    """Train ``arch`` on synthetic page crops against the teacher's maps and the renderer's
    boxes. Writes ``run_dir/last.pt`` (resumable) and ``run_dir/metrics.jsonl``."""
    from .train import MetricsLog, optimizer_for, set_seed

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    set_seed(seed)
    spec = detector_spec(teacher)
    model = build_detector(arch).to(torch.device(device))
    optimizer, scheduler = optimizer_for(model.parameters(), lr, weight_decay, steps)
    config = _detector_config(
        arch, steps, batch_size, crop, lr, seed, teacher, kd_weight, gt_weight, crops_per_page, device, spec
    )
    start, scheduler = _start(run_dir, model, optimizer, scheduler, lr, steps, resume)
    log = MetricsLog(run_dir / "metrics.jsonl")
    log({"event": "start", "step": start, **{k: v for k, v in config.items() if k != "spec"}})
    pool = PagePool(teacher, spec)
    dev = dev_pages(pool, dev_count) if eval_every and dev_count else []
    if dev and teacher and start == 0:
        log({"step": 0, **{f"dev_det_{k}_teacher": round(v, 5) for k, v in teacher_scores(pool, dev).items()}})
    hooks = _detector_hooks(
        run_dir, config, model, optimizer, scheduler, dev, spec, log, start, eval_every, checkpoint_every
    )
    signal.signal(signal.SIGTERM, hooks.on_term)
    if start < steps:
        _train_on_crops(
            model, pool, optimizer, scheduler, log, hooks, config, start=start, workers=workers, progress=progress
        )
    log({"event": "done", "step": steps})
    return run_dir / "last.pt"


# --------------------------------------------------------------------------- export


def export_detector(model, out: str | Path, spec: DetSpec, extra: dict | None = None, opset: int = 17) -> Path:
    """The probability map graph ([N, 3, H, W] -> [N, 1, H, W], dynamic N, H, W) with the
    ``ocr-det/1`` metadata of ``spec`` and the weight count."""
    import onnx

    from .export import count_params

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dims = {0: "batch", 2: "height", 3: "width"}
    torch.onnx.export(
        model.eval(),
        (torch.zeros(1, 3, 320, 320),),
        str(out),
        input_names=["images"],
        output_names=["prob"],
        dynamic_axes={"images": dims, "prob": dims},
        opset_version=opset,
        dynamo=False,
    )
    proto = onnx.load(str(out))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**spec.to_metadata(), **(extra or {}), "params": str(count_params(proto))})
    onnx.save(proto, str(out))
    return out


def detector_parity(model, path: str | Path, sizes=((320, 256), (416, 640)), seed: int = 0) -> float:
    """Largest |PyTorch - ONNX Runtime| over the probability map on random inputs."""
    gen = torch.Generator().manual_seed(seed)
    return onnx_gap(model, path, [torch.randn(1, 3, h, w, generator=gen) for h, w in sizes])


def export_checkpoint(checkpoint: str | Path, out: str | Path, name: str = "db-student", **settings) -> dict:
    """``python -m distill export-detector``: the checkpoint's model with the preparation it was
    trained with and the post-processing ``settings`` (thresh, box_thresh, unclip_ratio, ...) over
    the teacher's. Refuses (ValueError) a graph whose output differs from PyTorch's."""
    model, state = load_detector(checkpoint)
    meta = state.get("config", {}).get("spec")
    spec = DetSpec.from_metadata(meta) if meta else detector_spec(None)
    spec = replace(spec, name=name, extra={}, **{k: v for k, v in settings.items() if v is not None})
    extra = {"distill.arch": state["arch"], "distill.step": str(state.get("step", 0))}
    path = export_detector(model, out, spec, extra)
    diff = detector_parity(model, path)
    if diff > 1e-4:
        Path(path).unlink()
        raise ValueError(f"the ONNX graph differs from PyTorch by {diff:.2e}; nothing written")
    return {"out": str(path), "name": name, "step": state.get("step", 0), "max_abs_diff": diff}
