"""Adapting the served recogniser to a customer's own lines (docs/lifecycle.md, "Adapting the
served model to a customer's documents").

A dataset of corrected or uploaded lines (``labels.tsv`` + images) refines the served package
(warm start, ``warmstart.WarmStudent``) with the warm-started distillation's loop, changed in
three ways:

- **Two kinds of line in every batch.** ``domain_share`` of each batch are the dataset's
  training lines, learnt by CTC on their labels (people corrected them: the teacher's reading
  does not filter them, and teaches them only with ``dataset_kd``), augmented a little differently at
  every step; with ``mix``, some are new lines set from pieces of several dataset lines
  (``glyphs.GlyphBank``). The rest are replayed general lines (``warmstart.build_cache``: our wide mix and
  augraphy degradations) that anchor the model: by default to its own starting distribution (KD
  towards the start), or to the teacher's targets and their labels (``anchor="teacher"``).
- **Each evaluation picks how far to go, and stops early** on the dataset's held-back lines
  (``data.held_back``, one line in ten, which training never sees): every ``eval_every`` steps the
  weights a quarter, half, three quarters and all the way from the start are exported and read
  through the serving path on the held-back lines and on general lines the run never trains on;
  the best on the held-back lines among those within ``forget_margin`` of the start on the general
  lines is kept, and the run stops after ``patience`` evaluations without a better one.
- **What the dataset cannot teach is reported, not dropped silently**: lines whose characters
  the model cannot produce, lines longer than the model's time steps, duplicates, images that
  do not read.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from engine.modelpkg import ModelSpec

from .data import held_back, read_labels, write_labels
from .warmstart import (
    CharAxis,
    OnnxTeacher,
    WarmRun,
    WarmStudent,
    _train_until,
    aligns,
    build_cache,
    cache_item,
    collate,
    to_input,
)


def _read_rgb(path: Path) -> np.ndarray | None:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if img is None else cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _gray(item: dict) -> np.ndarray:
    """A cached line ([C, H, W] uint8, as the model reads it) as one grayscale image [H, W] uint8."""
    return item["images"].numpy().astype(np.float32).mean(0).astype(np.uint8)


def dataset_lines(dataset: str | Path, axis: CharAxis, spec: ModelSpec, teach: OnnxTeacher, top_k: int = 8):
    """(cache items of the dataset's training lines, what was left out and why). The held-back
    lines are not read here."""
    dataset = Path(dataset)
    items, problems, seen = [], {"unproducible": [], "too_long": [], "duplicate": [], "unreadable": []}, {}
    for rel, text in read_labels(dataset):
        if held_back(rel):
            continue
        raw = (dataset / rel).read_bytes() if (dataset / rel).is_file() else b""
        key = hashlib.sha1(raw + text.encode()).hexdigest()
        if key in seen:
            problems["duplicate"].append({"line": rel, "same_as": seen[key]})
            continue
        seen[key] = rel
        rgb = _read_rgb(dataset / rel)
        if rgb is None:
            problems["unreadable"].append({"line": rel})
            continue
        item = cache_item(rgb, text, "dataset", axis, spec, teach, top_k)
        if item is None:
            missing = sorted({c for c in text if axis.encode(c) is None and not c.isspace()})
            problems["unproducible"].append({"line": rel, "text": text, "characters": "".join(missing)})
        elif not aligns(item):
            steps = int(item["top_idx"].shape[0])
            problems["too_long"].append({"line": rel, "characters": len(item["labels"]), "steps": steps})
        else:
            items.append({**item, "trusted": True})
    return items, problems


def replay_folder(root: str | Path, student: str | Path, teacher: str | Path, seed: int, lines: int) -> Path:
    """Where the replayed lines for this student's classes and input, this teacher and draw live
    under ``root``: jobs that adapt packages with the same classes share one cache."""
    spec = ModelSpec.from_file(student)
    what = [list(spec.classes), spec.input_height, spec.input_channels, Path(teacher).name, seed, lines]
    return Path(root) / hashlib.sha1(json.dumps(what).encode()).hexdigest()[:16]


def held_back_folder(dataset: str | Path, out: str | Path) -> Path | None:
    """The dataset's held-back lines copied into ``out`` (a labels.tsv folder), or None when it
    holds none."""
    dataset, out = Path(dataset), Path(out)
    items = [(rel, text) for rel, text in read_labels(dataset) if held_back(rel) and (dataset / rel).is_file()]
    if not items:
        return None
    copied = []
    for k, (rel, text) in enumerate(items):
        target = out / "lines" / f"{k:05d}{Path(rel).suffix or '.png'}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dataset / rel, target)
        copied.append((target.relative_to(out).as_posix(), text))
    write_labels(out, copied)
    return out


class AdaptRun(WarmRun):
    """A warm run over the replay cache plus the dataset's lines, in mixed batches. With ``anchor``
    "start" the replayed lines learn the starting model's own distribution (learning without
    forgetting: KD towards the model being adapted, no CTC on them); with "teacher", the cached
    teacher's (KD) and their labels where the teacher reads them (CTC)."""

    suffix = "-adapted"

    def __init__(
        self,
        replay_cache,
        dataset_items: list[dict],
        domain_share: float,
        *args,
        anchor="start",
        augment=0.5,
        l2sp=0.0,
        guard_margin=-1.0,
        join=0.0,
        dataset_kd=0.0,
        mix=0.0,
        **kwargs,
    ):
        super().__init__(replay_cache, *args, **kwargs)
        self.augment, self.l2sp, self.guard_margin, self.join = augment, l2sp, guard_margin, join
        self.dataset_kd, self.teach = dataset_kd, None
        if dataset_kd > 0:  # the teacher reads each dataset line as the step sees it
            self.teach = OnnxTeacher(self.lineage["teacher"], self.axis, threads=torch.get_num_threads(), feature=None)
        self.anchor = None
        if anchor == "start":
            self.anchor = WarmStudent(self.student, self.axis).eval()
            for p in self.anchor.parameters():
                p.requires_grad_(False)
        self.replay = list(range(len(self.items)))
        self.items = self.items + dataset_items
        self.dataset = list(range(len(self.replay), len(self.items)))
        self.domain_share, self.mix = domain_share, mix
        self.glyphs = self.glyph_bank() if mix > 0 else None
        self.per_epoch = max(1, len(self.dataset) // max(1, round(self.batch_size * domain_share)))

    def glyph_bank(self):
        """The dataset's lines cut between their characters where the teacher's cached
        distribution aligns their labels (``glyphs.GlyphBank``)."""
        from .glyphs import GlyphBank

        lines = (
            (_gray(it), it["labels"].tolist(), it["top_idx"].numpy(), it["top_p"].float().numpy())
            for it in (self.items[i] for i in self.dataset)
        )
        return GlyphBank(lines, space=self.axis.index.get(" "), pad=int(self.spec.pad_pixel))

    def penalty(self) -> torch.Tensor | None:
        """L2-SP: ``l2sp`` times the squared distance of the weights from where the run started
        (summed over every weight), so that the domain is learnt by the smallest change."""
        if not self.l2sp:
            return None
        params = self.model.graph.params
        return self.l2sp * sum(((params[k] - self.start[k]) ** 2).sum() for k in self.start if params[k].requires_grad)

    def augmented(self, item: dict, rng: np.random.Generator) -> dict:
        """A dataset line as this step sees it: with probability ``join`` set beside another dataset
        line (``joined``), stretched or squeezed by up to 15 %, then degraded by the seed's
        augmentations at ``augment`` strength (300 lines are learnt by heart within ten epochs; seen
        a little differently every time, they teach the domain instead)."""
        import cv2

        from .augment import degrade

        gray = _gray(item)
        if self.mix > 0 and len(self.glyphs) and rng.random() < self.mix:
            gray, labels = self.glyphs.line(rng, len(item["labels"]))
            text = "".join(self.axis.chars[c] for c in labels)
            item = {**item, "labels": torch.tensor(labels, dtype=item["labels"].dtype), "texts": text}
        elif self.join > 0 and rng.random() < self.join:
            item, gray = self.joined(item, gray, rng)
        h, w = gray.shape
        gray = cv2.resize(gray, (max(8, round(w * rng.uniform(0.85, 1.15))), h), interpolation=cv2.INTER_LINEAR)
        line = torch.from_numpy(to_input(np.repeat(degrade(gray, rng, self.augment)[:, :, None], 3, axis=2), self.spec))
        steps = line.shape[2] // self.spec.width_multiple
        k = item["top_idx"].shape[1]
        if self.teach is not None:
            idx, p, _ = self.teach(line.numpy(), k)
            targets = {"top_idx": torch.from_numpy(idx), "top_p": torch.from_numpy(p)}
        else:  # blank targets: the teacher's KD is not learnt on this line
            top_p = torch.zeros(steps, k, dtype=item["top_p"].dtype)
            top_p[:, 0] = 1
            targets = {"top_idx": torch.zeros(steps, k, dtype=item["top_idx"].dtype), "top_p": top_p}
        return {**item, **targets, "images": line, "feats": torch.zeros(steps, item["feats"].shape[1])}

    def joined(self, item: dict, gray: np.ndarray, rng: np.random.Generator) -> tuple[dict, np.ndarray]:
        """The line followed by another of the dataset's, their margins between them trimmed to a
        tenth to a fifth of a line height in all (no wider than the gap between two characters:
        the label has no space there), and its label followed by the other's: the same characters
        in new neighbours and at new places in the line, which 300 short lines alone do not give."""
        other = self.items[self.dataset[int(rng.integers(len(self.dataset)))]]
        second = _gray(other)
        h = gray.shape[0]
        paper = int(np.median(np.concatenate([gray[:, :2].ravel(), gray[:, -2:].ravel()])))
        margin = max(1, round(h * rng.uniform(0.05, 0.1)))

        def inked(img: np.ndarray) -> tuple[int, int]:
            cols = np.flatnonzero((img < paper - 40).sum(axis=0) > 0)
            return (int(cols[0]), int(cols[-1]) + 1) if cols.size else (0, img.shape[1])

        end = min(gray.shape[1], inked(gray)[1] + margin)
        start = max(0, inked(second)[0] - margin)
        labels = torch.cat([item["labels"], other["labels"]])
        return {**item, "labels": labels, "texts": item["texts"] + other["texts"]}, np.hstack(
            [gray[:, :end], second[:, start:]]
        )

    def seen(self, i: int) -> dict:
        """Line ``i`` as this step sees it: a dataset line augmented (``augmented``), a replayed one as cached."""
        item = self.items[i]
        if (self.augment > 0 or self.join > 0 or self.mix > 0) and item.get("trusted"):
            return self.augmented(item, np.random.default_rng([self.seed, self.step, i]))
        return item

    def batch_for(self, group: list[int]) -> dict:
        """The batch's lines and what each learns (``kd_on``, a weight per line): a replayed line
        the anchor's distribution (or, anchored to the teacher, the teacher's where it reads the
        line); a dataset line its label by CTC, and with ``dataset_kd`` the teacher's distribution
        too, where the teacher reads the line as the step sees it."""
        batch = collate([self.seen(i) for i in group], self.spec)
        trusted = batch["trusted"].float()
        own = trusted * batch["readable"].float() * self.dataset_kd
        if self.anchor is None:
            batch["kd_on"] = batch["readable"].float() * (1 - trusted) + own
            return batch
        with torch.no_grad():
            logp, _ = self.anchor(batch["images"])
        k, steps = batch["top_idx"].shape[-1], min(logp.shape[1], batch["top_idx"].shape[1])
        values, indices = logp[:, :steps].exp().topk(k, dim=-1)
        values = values / values.sum(-1, keepdim=True).clamp_min(1e-12)
        teacher = (own > 0)[:, None, None]
        batch["top_idx"] = torch.where(teacher, batch["top_idx"][:, :steps], indices)
        batch["top_p"] = torch.where(teacher, batch["top_p"][:, :steps], values)
        batch["lengths"] = batch["lengths"].clamp_max(steps)
        batch["readable"] = torch.zeros_like(batch["readable"])  # no CTC on replayed lines
        batch["kd_on"] = (1 - trusted) + own
        return batch

    def groups(self):
        """Batch ``step``: a pure function of (seed, step), so a resumed run goes on where it was."""
        take = min(len(self.dataset), round(self.batch_size * self.domain_share))
        while True:
            rng = random.Random(self.seed * 1_000_003 + self.step)
            picked = rng.sample(self.dataset, take) + rng.sample(self.replay, self.batch_size - take)
            self.epoch = self.step // self.per_epoch
            yield picked


ALPHAS = (0.25, 0.5, 0.75, 1.0)


def general_folder(out: Path, seed: int, lines: int) -> Path:
    """``lines`` general lines the run never trains on (the replay's kind of line, another draw),
    as a labels.tsv folder: what the adapted model must still read."""
    import cv2

    from .warmstart import LineDraws

    folder = Path(out) / "general"
    if (folder / "labels.tsv").exists():
        return folder
    (folder / "lines").mkdir(parents=True, exist_ok=True)
    draws, items = LineDraws(seed + 7919), []
    for i in range(lines):
        rgb, text, _ = draws(i)
        rel = f"lines/{i:05d}.png"
        cv2.imwrite(str(folder / rel), np.ascontiguousarray(rgb[:, :, ::-1]))
        items.append((rel, text))
    write_labels(folder, items)
    return folder


def _candidates(run: AdaptRun, held: Path | None, general: Path):
    """(alpha, held-back accuracy or None, general accuracy, package) of the weights ``alpha`` of the
    way from the start to the run's average, each exported to ``candidate-<alpha>.onnx`` (at step 0:
    the start) and, with the run's ``guard_margin`` >= 0, paired with the start
    (``pair.guarded_pair``) in ``guarded-<alpha>.onnx``, which is what is scored and kept."""
    from .pair import guarded_pair
    from .warmstart import export, interpolate_weights, score

    for alpha in ALPHAS if run.step else (0.0,):
        lineage = {**run.lineage, "steps": run.step, "ema_decay": run.ema_decay, "interpolate": alpha}
        values = interpolate_weights(run.start, run.ema, alpha)
        path = export(run.model, run.student, run.out / f"candidate-{alpha}.onnx", lineage, values, 0.0, run.suffix)
        if run.guard_margin >= 0 and alpha > 0:
            path = guarded_pair(run.student, path, run.out / f"guarded-{alpha}.onnx", run.guard_margin)
        domain = score(path, [str(held)])[held.name] if held else None
        yield alpha, domain, score(path, [str(general)])[general.name], path


def _evaluate(
    run: AdaptRun, held: Path | None, general: Path, best: dict, margin: float, within: float = 0.0, chars: int = 0
) -> bool:
    """Score each interpolation of the current weights (guarded, with a ``guard_margin``) on the
    held-back lines and the general lines; of those that read the general lines within ``margin`` of
    the start, the one that reads the held-back lines best (without held-back lines: the one
    furthest from the start) is this evaluation's. It becomes ``best.onnx`` when it beats the best
    so far, or, with ``within`` > 0, reads the held-back lines (``chars`` characters) no more than
    ``within`` standard errors below the best so far (``_band``: a few dozen held-back lines cannot
    tell a later step from an earlier one by less). True when it is kept."""
    floor = best.get("general_before", 0.0) - margin
    rows = list(_candidates(run, held, general))
    allowed = [r for r in rows if r[2] >= floor] or rows[:1]
    alpha, domain, general_acc, path = max(allowed, key=lambda r: (r[1] if r[1] is not None else 0.0, r[0]))
    # dev_* keys: an evaluation, not a loss term, for the job's progress and curves (engine.report)
    record = {"step": run.step, "dev_char_accuracy": domain, "dev_general_char_accuracy": general_acc}
    run.metrics({**record, "dev_alpha": alpha})
    run.log(json.dumps({**record, "alpha": alpha, "tried": [r[:3] for r in rows]}))
    best.setdefault("general_before", general_acc)
    best.setdefault("before", domain)
    key = domain if domain is not None else run.step
    top = best.get("top", best.get("key"))  # runs from before the band recorded only "key"
    band = _band(within, top, chars) if domain is not None else 0.0
    if top is not None and (key <= top if band <= 0 else key < top - band):
        return False
    shutil.copyfile(path, run.out / "best.onnx")
    best.update({"dev_char_accuracy": domain, "general": general_acc, "alpha": alpha, "step": run.step, "key": key})
    best["top"] = key if top is None else max(top, key)
    (run.out / "best.json").write_text(json.dumps(best))
    return True


def _band(within: float, accuracy: float | None, chars: int) -> float:
    """``within`` standard errors of a character accuracy ``accuracy`` measured on ``chars``
    characters (a binomial's: sqrt(p (1 - p) / characters)), as a fraction; 0 without ``within``
    or an accuracy."""
    if within <= 0 or accuracy is None:
        return 0.0
    return within * math.sqrt(max(accuracy * (1 - accuracy), 1e-4) / max(1, chars))


def adapt(
    dataset: str | Path,
    out: str | Path,
    student: str | Path,
    teacher: str | Path,
    replay_cache: str | Path,
    replay_lines: int = 2000,
    steps: int = 1500,
    batch_size: int = 16,
    lr: float = 2e-4,
    domain_share: float = 0.5,
    kd_weight: float = 1.0,
    eval_every: int = 200,
    patience: int = 3,
    forget_margin: float = 0.005,
    general_lines: int = 300,
    anchor: str = "start",
    augment: float = 0.5,
    l2sp: float = 0.0,
    guard_margin: float = 0.05,
    join: float = 0.5,
    dataset_kd: float = 0.0,
    mix: float = 0.0,
    noise_band: float = 1.0,
    seed: int = 0,
    threads: int = 1,
    log=print,
) -> dict:
    """Adapt ``student`` to ``dataset``; the best package is ``out/adapted.onnx``: guarded by the
    start (``pair.guarded_pair``, margin ``guard_margin``; negative: the adapted weights alone).
    Returns the run's summary (also ``out/adapt.json``): held-back accuracy before and after, the best step,
    the lines used and those left out."""
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    t0 = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    build_cache(replay_cache, replay_lines, student, teacher, seed=seed, threads=threads, log=log)
    items, problems = _learnable(dataset, student, teacher, threads)
    held = held_back_folder(dataset, out / "held_back")
    general = general_folder(out, seed, general_lines)
    args = (out, student, batch_size, lr, {"ctc": 1.0, "kd": kd_weight}, seed, 0.99, log)
    opts = dict(
        anchor=anchor, augment=augment, l2sp=l2sp, guard_margin=guard_margin, join=join, dataset_kd=dataset_kd, mix=mix
    )
    run = AdaptRun(replay_cache, items, domain_share, *args, **opts)
    run.resume()
    if run.glyphs is not None:
        log(f"glyph bank: {len(run.glyphs)} of {len(items)} training lines cut between their characters")
    run.metrics({"event": "start", "step": run.step, "steps": steps, "adapt": True, **run.lineage})
    best = json.loads((out / "best.json").read_text()) if (out / "best.json").exists() else {}
    _train_and_select(run, held, general, best, (steps, eval_every, patience), forget_margin, noise_band)
    return _finish(run, dataset, items, held, problems, best, steps, t0)


def _train_and_select(run: AdaptRun, held, general, best: dict, schedule, forget_margin: float, noise_band: float):
    """Train until ``steps``, evaluating every ``eval_every`` steps (``_evaluate``, with a band of
    ``noise_band`` standard errors) and stopping after ``patience`` evaluations none of which was kept;
    ``best`` (and ``best.json``) records where the run stands."""
    steps, eval_every, patience = schedule
    chars = sum(len(text) for _, text in read_labels(held)) if held else 0
    if run.step == 0:
        _evaluate(run, held, general, best, forget_margin)
    stale = best.get("stale", 0)
    while run.step < steps and stale < patience:
        _train_until(run, steps, 0, 10**9, 300, None, (), 0, stop=min(steps, run.step + eval_every))
        run.save()
        improved = _evaluate(run, held, general, best, forget_margin, noise_band, chars)
        stale = 0 if improved or held is None else stale + 1  # no held-back lines: no early stop
        best["stale"] = stale
        (run.out / "best.json").write_text(json.dumps(best))


def _learnable(dataset, student, teacher, threads: int) -> tuple[list[dict], dict]:
    """The dataset's training lines as cache items, and what was left out (ValueError: nothing left)."""
    s_spec = ModelSpec.from_file(student)
    axis = CharAxis.build(s_spec, ModelSpec.from_file(teacher))
    items, problems = dataset_lines(dataset, axis, s_spec, OnnxTeacher(teacher, axis, threads=threads))
    if not items:
        raise ValueError(f"{dataset}: no line the model can learn ({json.dumps(_counts(problems))})")
    return items, problems


def _finish(run: AdaptRun, dataset, items, held, problems, best, steps, t0) -> dict:
    """``adapted.onnx`` (the best package) and the run's summary in ``adapt.json``."""
    shutil.copyfile(run.out / "best.onnx", run.out / "adapted.onnx")
    summary = {
        "dataset": str(dataset),
        "lines": len(items),
        "held_back_lines": len(read_labels(held)) if held else 0,
        "left_out": problems,
        "left_out_counts": _counts(problems),
        "held_back_before": best.get("before"),
        "held_back_after": best.get("dev_char_accuracy"),
        "best_step": best.get("step"),
        "alpha": best.get("alpha"),
        "general_before": best.get("general_before"),
        "general_after": best.get("general"),
        "guard_margin": run.guard_margin,
        "steps_run": run.step,
        "stopped_early": run.step < steps,
        # over every call that finished (a resumed or finished run given again adds its own)
        "seconds": round(best.get("seconds", 0.0) + time.time() - t0, 1),
    }
    best["seconds"] = summary["seconds"]
    (run.out / "best.json").write_text(json.dumps(best))
    (run.out / "adapt.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    run.metrics({"event": "done", "step": run.step})
    return summary


def _counts(problems: dict) -> dict:
    return {k: len(v) for k, v in problems.items()}
