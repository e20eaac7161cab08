"""Warm-started distillation: a served recogniser refined by a stronger one.

The student is any recogniser in our model-package format (by default the served PP-OCRv6 tiny),
run as a trainable torch module (``onnxgraph.OnnxModule``); the teacher is another package (by
default PP-OCRv6 small), run by ONNX Runtime. The loss is the seed's:

* CTC on the labels;
* KL between the teacher's and the student's per-timestep distributions, masked by each line's
  length. The two models have different class lists (small's 18,710 hold all of tiny's 6,906,
  in another order, and both fold traditional forms onto simplified characters), so both are
  summed onto one *character* axis, the student's distinct characters plus the blank; the
  teacher's top ``k`` characters per step are kept;
* MSE between the neck features (student 160 channels, teacher 120) through a learned linear
  adapter, masked the same way.

The teacher costs several times the student, so its targets are computed once per line when
the line cache is built (``build_cache``) and read back every epoch. The cache holds lines drawn
from the training generator's wide mix (our own degradations at photo severity) and lines
degraded by augraphy (a maintained third-party library of print, scan and camera artefacts), so
the student does not learn one degradation code's habits. Reserved fonts and texts are never
drawn (the training pools exclude them).

Checkpoints (``last.pt``) hold the student's parameters, the adapter and the optimiser; a run
resumes from them. ``export`` writes the trained weights back into the student's own ONNX graph
(``onnxgraph.write_back``), so the package keeps its metadata and preprocessing contract.
"""

from __future__ import annotations

import json
import math
import random
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.modelpkg import ModelSpec
from engine.preprocess import prepare_line
from engine.sessions import ort_session

from .onnxgraph import OnnxModule, with_outputs, write_back

# Feature points: the neck outputs [N, T, C] of the PP-OCRv6 recognisers.
STUDENT_FEATURE = "p2o.pd_op.transpose.2.0"  # PP-OCRv6 tiny, 160 channels
TEACHER_FEATURE = "p2o.pd_op.transpose.8.0"  # PP-OCRv6 small, 120 channels
SHARD = 256  # lines per cache file


@dataclass(frozen=True)
class CharAxis:
    """One character axis for two class lists: index 0 is the blank, then the student's distinct
    characters. ``student[c]`` / ``teacher[c]`` give class ``c``'s character index (-1: the
    teacher's classes the student has no character for)."""

    chars: tuple[str, ...]
    student: np.ndarray
    teacher: np.ndarray

    @classmethod
    def build(cls, student: ModelSpec, teacher: ModelSpec | None = None) -> CharAxis:
        chars = [""]
        index = {"": 0}
        s = np.zeros(student.num_classes, np.int64)
        for c, label in enumerate(student.classes):
            if c == student.blank_index:
                continue
            if label not in index:
                index[label] = len(chars)
                chars.append(label)
            s[c] = index[label]
        t = np.full(teacher.num_classes if teacher else 0, -1, np.int64)
        if teacher is not None:
            for c, label in enumerate(teacher.classes):
                t[c] = 0 if c == teacher.blank_index else index.get(label, index.get(_nfkc(label), -1))
        return cls(tuple(chars), s, t)

    @property
    def index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> list[int] | None:
        """Character indices of a label (a character missing as printed is tried in its NFKC
        form); None when the student cannot write it."""
        index, out = self.index, []
        for ch in text:
            if ch.isspace():
                k = index.get(" ")
                if k is None:
                    continue
                out.append(k)
                continue
            k = index.get(ch, index.get(_nfkc(ch)))
            if k is None:
                return None
            out.append(k)
        return out or None


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text)


# --------------------------------------------------------------------------- the lines


def augraphy_degrade(rgb: np.ndarray, seed: int) -> np.ndarray:
    """A print, scan or camera degradation drawn by augraphy (its own code, seeded here):
    ink (bleed, low ink, mottling, bleed-through), paper (tint, texture, stains) and capture
    (lighting gradient, dirty drum, noise, low light, depth blur, brightness, gamma, colour
    shift, JPEG) phases, each step on with its own probability."""
    import augraphy as ag
    import cv2

    random.seed(seed)
    np.random.seed(seed % (2**32))
    steps = [
        (ag.InkBleed(), 0.35),
        (ag.LowInkRandomLines(), 0.25),
        (ag.LowInkPeriodicLines(), 0.2),
        (ag.InkMottling(), 0.25),
        (ag.BleedThrough(), 0.15),
        (ag.ColorPaper(), 0.35),
        (ag.NoiseTexturize(), 0.35),
        (ag.Stains(), 0.1),
        (ag.LightingGradient(), 0.4),
        (ag.DirtyDrum(), 0.15),
        (ag.SubtleNoise(), 0.4),
        (ag.LowLightNoise(), 0.2),
        (ag.DepthSimulatedBlur(), 0.15),
        (ag.Brightness(), 0.35),
        (ag.Gamma(), 0.3),
        (ag.ColorShift(), 0.2),
        (ag.Jpeg(), 0.5),
    ]
    img = np.ascontiguousarray(rgb)
    for aug, p in steps:
        if random.random() >= p:
            continue
        try:
            out = aug(img, force=True)
        except (cv2.error, ValueError, ZeroDivisionError, IndexError):
            continue  # a step that cannot handle this image's size leaves it as it was
        out = out[0] if isinstance(out, tuple) else out
        if out is None or out.shape[:2] != img.shape[:2]:
            continue
        img = out if out.ndim == 3 else np.repeat(out[:, :, None], 3, axis=2)
        img = np.ascontiguousarray(img.astype(np.uint8))
    return img


class LineDraws:
    """Line ``i`` of a cache is a pure function of (seed, i): a wide-mix training line (our
    generator and degradations, photo severity included) or, on ``augraphy_share`` of the lines,
    a clean wide-mix line degraded by augraphy. Returns (RGB uint8, text)."""

    def __init__(self, seed: int, augraphy_share: float = 0.4, count: int = 1_000_000):
        from .data import SyntheticLines

        self.seed, self.augraphy_share = seed, augraphy_share
        self.ours = SyntheticLines(count, split="train", seed=seed, mix="wide", ramp=False, height=64)
        self.clean = SyntheticLines(count, split="train", seed=seed + 1, mix="wide", strength=0.0, height=64)

    def __call__(self, i: int) -> tuple[np.ndarray, str, str]:
        rng = np.random.default_rng([self.seed, i, 7])
        if rng.random() < self.augraphy_share:
            gray, text, _ = self.clean.sample(i)
            rgb = np.repeat(gray[:, :, None], 3, axis=2)
            return augraphy_degrade(rgb, self.seed * 1_000_003 + i), text, "augraphy"
        gray, text, _ = self.ours.sample(i)
        return np.repeat(gray[:, :, None], 3, axis=2), text, "ours"


def to_input(rgb: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """The line as the serving path prepares it (``prepare_line``), back in uint8 [C, H, W]."""
    x = prepare_line(rgb, spec)
    mean = np.asarray(spec.norm_mean, np.float32)[:, None, None]
    std = np.asarray(spec.norm_std, np.float32)[:, None, None]
    return np.clip(np.round((x * std + mean) * 255.0), 0, 255).astype(np.uint8)


def normalise(images: torch.Tensor, spec: ModelSpec) -> torch.Tensor:
    mean = torch.tensor(spec.norm_mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.norm_std).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean) / std


class OnnxTeacher:
    """The teacher package through ONNX Runtime, one line at a time (no padding): its
    distribution summed onto the character axis and its neck features."""

    def __init__(self, path: str | Path, axis: CharAxis, threads: int = 1, feature: str | None = TEACHER_FEATURE):
        self.spec = ModelSpec.from_file(path)
        graph = with_outputs(path, (feature,)) if feature else str(path)
        self.session = ort_session(graph, threads)
        self.input_name = self.session.get_inputs()[0].name
        self.feature = feature
        self.axis = axis
        keep = axis.teacher >= 0
        self.src = torch.from_numpy(np.nonzero(keep)[0])
        self.dst = torch.from_numpy(axis.teacher[keep])

    def __call__(self, line: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(top-k character indices [T, k] int32, their probabilities renormalised [T, k]
        float16, features [T, C'] float16 or None) for one uint8 [C, H, W] line."""
        x = normalise(torch.from_numpy(line)[None], self.spec).numpy()
        outs = self.session.run(None, {self.input_name: x})
        probs = torch.from_numpy(np.asarray(outs[0][0], np.float32))
        if self.spec.output_kind != "probs":
            probs = probs.softmax(-1) if self.spec.output_kind == "logits" else probs.exp()
        chars = torch.zeros(probs.shape[0], len(self.axis.chars))
        chars.index_add_(1, self.dst, probs.index_select(1, self.src))
        values, indices = chars.topk(top_k, dim=-1)
        values = values / values.sum(-1, keepdim=True).clamp_min(1e-12)
        feats = np.asarray(outs[1][0], np.float16) if self.feature else None
        return indices.numpy().astype(np.int32), values.numpy().astype(np.float16), feats


def cache_item(
    rgb: np.ndarray, text: str, kind: str, axis: CharAxis, s_spec: ModelSpec, teach: OnnxTeacher, top_k: int
) -> dict | None:
    """One line's cache entry: the line as the student reads it, its text, kind and labels and the
    teacher's targets; None when the axis cannot encode its text (a character the student lacks)."""
    labels = axis.encode(text)
    if labels is None:
        return None
    line = to_input(rgb, s_spec)
    idx, p, feats = teach(line, top_k)
    return {
        "images": torch.from_numpy(line),
        "texts": text,
        "kinds": kind,
        "labels": torch.tensor(labels, dtype=torch.int32),
        "top_idx": torch.from_numpy(idx),
        "top_p": torch.from_numpy(p),
        "feats": torch.from_numpy(feats),
    }


def aligns(item: dict) -> bool:
    """Whether CTC can align the entry: no more characters than time steps."""
    return len(item["labels"]) <= item["top_idx"].shape[0]


def _render_shard(lines: range, draws: LineDraws, axis: CharAxis, s_spec: ModelSpec, teach: OnnxTeacher, top_k: int):
    """The cache entries of ``lines`` (``cache_item``); a line the axis cannot encode or CTC cannot
    align is left out."""
    shard = {"images": [], "texts": [], "labels": [], "top_idx": [], "top_p": [], "feats": [], "kinds": []}
    for i in lines:
        item = cache_item(*draws(i), axis, s_spec, teach, top_k)
        if item is None or not aligns(item):
            continue
        for key, value in item.items():
            shard[key].append(value)
    return shard


def build_cache(
    out: str | Path,
    count: int,
    student: str | Path,
    teacher: str | Path,
    seed: int = 0,
    top_k: int = 8,
    augraphy_share: float = 0.4,
    threads: int = 1,
    log=print,
) -> Path:
    """Render ``count`` lines and the teacher's targets into ``out/shard_*.pt`` (``SHARD`` lines
    each). Shards already written are kept, so an interrupted build resumes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    s_spec, t_spec = ModelSpec.from_file(student), ModelSpec.from_file(teacher)
    axis = CharAxis.build(s_spec, t_spec)
    (out / "cache.json").write_text(
        json.dumps(
            {
                "student": str(student),
                "teacher": str(teacher),
                "seed": seed,
                "top_k": top_k,
                "count": count,
                "augraphy_share": augraphy_share,
                "chars": len(axis.chars),
            },
            indent=1,
        )
    )
    teach = OnnxTeacher(teacher, axis, threads=threads)
    draws = LineDraws(seed, augraphy_share)
    t0 = time.time()
    for first in range(0, count, SHARD):
        path = out / f"shard_{first // SHARD:05d}.pt"
        if path.exists():
            continue
        end = min(count, first + SHARD)
        shard = _render_shard(range(first, end), draws, axis, s_spec, teach, top_k)
        torch.save(shard, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
        log(json.dumps({"cache": str(path), "lines": end, "seconds": round(time.time() - t0, 1)}))
    return out


def load_cache(folder: str | Path) -> list[dict]:
    """Every cached line as a dict (image, labels, top_idx, top_p, feats, text, kind)."""
    items = []
    for path in sorted(Path(folder).glob("shard_*.pt")):
        shard = torch.load(path, weights_only=False)
        for k in range(len(shard["texts"])):
            items.append({key: shard[key][k] for key in shard})
    if not items:
        raise ValueError(f"{folder}: no cached lines (python -m distill warm-cache first)")
    return items


# --------------------------------------------------------------------------- the loss and the loop


class WarmStudent(torch.nn.Module):
    """The student graph plus what training adds: the summing of its classes onto the character
    axis and the adapter from its neck features to the teacher's."""

    def __init__(self, path: str | Path, axis: CharAxis, teacher_channels: int = 120):
        super().__init__()
        self.graph = OnnxModule(path, features=(STUDENT_FEATURE,))
        self.register_buffer("char_of", torch.from_numpy(axis.student))
        self.num_chars = len(axis.chars)
        spec = ModelSpec.from_file(path)
        with torch.no_grad():
            probe = self.graph(torch.zeros(1, spec.input_channels, spec.input_height, 64))
        self.adapter = torch.nn.Linear(probe[STUDENT_FEATURE].shape[-1], teacher_channels)
        self.register_buffer("feat_mean", torch.zeros(teacher_channels))
        self.register_buffer("feat_std", torch.ones(teacher_channels))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log-probabilities on the character axis [N, T, U], features [N, T, C])."""
        out = self.graph(x)
        probs = out["logits"].softmax(-1)
        chars = probs.new_zeros(*probs.shape[:-1], self.num_chars).index_add_(-1, self.char_of, probs)
        return torch.log(chars + 1e-10), out[STUDENT_FEATURE]


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    return (torch.arange(steps)[None, :] < lengths[:, None]).float()


def feature_stats(items: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of the teacher's cached features (the feature term compares
    standardised features, so its scale does not depend on the teacher's)."""
    feats = torch.cat([it["feats"][::4].float() for it in items])
    return feats.mean(0), feats.std(0).clamp_min(1e-3)


def warm_loss(
    student: WarmStudent, batch: dict, weights: dict[str, float], train_backbone_on_features: bool = True
) -> tuple[torch.Tensor, dict]:
    """The weighted loss and its parts. ``train_backbone_on_features`` False lets the feature
    term train the adapter only (its first steps, while the adapter is still random)."""
    logp, feats = student(batch["images"])
    if not train_backbone_on_features:
        feats = feats.detach()
    n, steps, _ = logp.shape
    lengths = batch["lengths"].clamp_max(steps)
    mask = step_mask(lengths, steps)
    parts = {}
    ctc = F.ctc_loss(
        logp.transpose(0, 1),
        batch["labels"],
        lengths,
        batch["label_lengths"],
        blank=0,
        reduction="none",
        zero_infinity=True,
    ) / batch["label_lengths"].clamp_min(1)
    # CTC learns a line the teacher reads, or one whose label people gave (``trusted``)
    trusted = batch["trusted"].float()
    readable = batch["readable"].float()
    learn = torch.maximum(readable, trusted)
    parts["ctc"] = (ctc * learn).sum() / learn.sum().clamp_min(1)
    if weights.get("kd", 0) > 0:
        t_steps = batch["top_idx"].shape[1]
        s = logp[:, :t_steps].gather(-1, batch["top_idx"])
        p = batch["top_p"]
        kl = (p * (torch.log(p.clamp_min(1e-8)) - s)).sum(-1)
        # only where the teacher reads the line: its doubt on a line degraded past reading would
        # teach the student doubt everywhere; and not on people's lines (the label is the truth).
        # A batch may say itself which lines KD learns, with what weight (``kd_on``: the adaptation).
        kd_rows = batch["kd_on"].float() if "kd_on" in batch else readable * (1 - trusted)
        kd_mask = mask[:, :t_steps] * kd_rows[:, None]
        parts["kd"] = (kl * kd_mask).sum() / kd_mask.sum().clamp_min(1)
    if weights.get("feat", 0) > 0:
        t_steps = batch["feats"].shape[1]
        target = (batch["feats"] - student.feat_mean) / student.feat_std
        diff = (student.adapter(feats[:, :t_steps]) - target).pow(2).mean(-1)
        parts["feat"] = (diff * mask[:, :t_steps]).sum() / mask[:, :t_steps].sum().clamp_min(1)
    total = sum(weights.get(k, 0) * v for k, v in parts.items())
    return total, {k: float(v.detach()) for k, v in parts.items()}


def teacher_reads(item: dict, max_error: float = 0.34) -> bool:
    """Whether the teacher's best path (its top class per step, collapsed) reads the line's label
    within ``max_error`` edits per character. A line degraded past reading teaches CTC to make
    characters up; the KD term still learns the teacher's doubt on it."""
    from .evaluate import edit_distance

    best = item["top_idx"][:, 0].tolist()
    path = [c for k, c in enumerate(best) if c != 0 and (k == 0 or c != best[k - 1])]
    labels = item["labels"].tolist()
    return edit_distance("".join(map(chr, path)), "".join(map(chr, labels))) <= max_error * max(1, len(labels))


def collate(items: list[dict], spec: ModelSpec) -> dict:
    """Pads lines to the widest with the model's pad pixel, and the teacher's targets to the
    longest line's steps (padding steps are masked)."""
    width = max(it["images"].shape[2] for it in items)
    stride = spec.width_multiple
    steps = width // stride
    images = torch.full(
        (len(items), spec.input_channels, spec.input_height, width), int(spec.pad_pixel), dtype=torch.uint8
    )
    k = items[0]["top_idx"].shape[1]
    top_idx = torch.zeros((len(items), steps, k), dtype=torch.long)
    top_p = torch.zeros((len(items), steps, k))
    top_p[:, :, 0] = 1.0
    feats = torch.zeros((len(items), steps, items[0]["feats"].shape[1]))
    lengths, readable, trusted = [], [], []
    for j, it in enumerate(items):
        w = it["images"].shape[2]
        images[j, :, :, :w] = it["images"]
        t = min(it["top_idx"].shape[0], steps)
        top_idx[j, :t] = it["top_idx"][:t].long()
        top_p[j, :t] = it["top_p"][:t].float()
        feats[j, :t] = it["feats"][:t].float()
        lengths.append(t)
        readable.append(teacher_reads(it))
        trusted.append(bool(it.get("trusted", False)))
    return {
        "readable": torch.tensor(readable),
        "trusted": torch.tensor(trusted),
        "images": normalise(images, spec),
        "lengths": torch.tensor(lengths),
        "top_idx": top_idx,
        "top_p": top_p,
        "feats": feats,
        "labels": torch.cat([it["labels"].long() for it in items]),
        "label_lengths": torch.tensor([len(it["labels"]) for it in items]),
    }


def batches(items: list[dict], batch_size: int, seed: int, epoch: int, bucket: int = 8):
    """One epoch of batches: a shuffled order, regrouped by width inside runs of ``bucket`` batches
    (little padding), the batches of a run in a shuffled order."""
    rng = random.Random(seed * 1000 + epoch)
    order = list(range(len(items)))
    rng.shuffle(order)
    run = batch_size * bucket
    for start in range(0, len(order) - batch_size + 1, run):
        chunk = sorted(order[start : start + run], key=lambda i: items[i]["images"].shape[2])
        groups = [chunk[i : i + batch_size] for i in range(0, len(chunk) - batch_size + 1, batch_size)]
        rng.shuffle(groups)
        yield from groups


def lr_at(step: int, steps: int, lr: float, warmup: int = 100) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, steps - warmup))))


def export(
    student: WarmStudent,
    source: str | Path,
    out: str | Path,
    lineage: dict | None = None,
    values: dict[str, torch.Tensor] | None = None,
    blank_offset: float = 0.0,
    suffix: str = "-warm",
) -> Path:
    """The student's package: ``source``'s graph with the trained weights and ``lineage`` in its
    metadata (``distill.*`` keys), renamed ``<name><suffix>`` (once: a refined refinement keeps
    one suffix)."""
    spec = ModelSpec.from_file(source)
    meta = {"ocr.name": f"{spec.name.removesuffix(suffix)}{suffix}"}
    if blank_offset:
        # the blank's logit lowered inside the graph (a refined model's blank can win too often:
        # characters dropped); the package says so, so decoders keep doubled characters apart
        key = student.graph.logits_bias
        if key is None:
            raise ValueError(f"{source}: no classifier bias before the logits to lower the blank's")
        values = dict(values if values is not None else student.graph.params.items())
        bias = values[key].detach().clone()
        bias[spec.blank_index] -= blank_offset
        values[key] = bias
        meta["ocr.blank_penalty"] = str(spec.blank_penalty + blank_offset)
    meta.update({f"distill.{k}": json.dumps(v) if not isinstance(v, str) else v for k, v in (lineage or {}).items()})
    return write_back(student.graph, source, out, meta, values)


def score(model_path: str | Path, folders: list[str], per_set: int | None = None) -> dict[str, float]:
    """Char accuracy of a package on each labels.tsv folder, through the serving path (``per_set``
    lines spread over each folder, or all)."""
    from .evaluate import evaluate

    out = {}
    for folder in folders:
        out[Path(folder).name] = (
            evaluate(folder, model_path, threads=1)["char_accuracy"]
            if per_set is None
            else _evaluate_sample(folder, model_path, per_set)
        )
    return out


def _evaluate_sample(folder: str, model_path: str | Path, per_set: int) -> float:
    import cv2

    from .data import read_labels
    from .evaluate import char_accuracy, clean_for_scoring, edit_distance, load_recognizer, read_bgr

    rec = load_recognizer(model_path)
    items = read_labels(folder)
    n = min(per_set, len(items))
    errors = total = 0
    for k in range(n):
        rel, text = items[k * len(items) // n]
        pred = read_bgr(rec, cv2.imread(str(Path(folder) / rel), cv2.IMREAD_COLOR))
        gt = clean_for_scoring(text)
        errors += edit_distance(gt, clean_for_scoring(pred))
        total += len(gt)
    return round(char_accuracy(errors, total), 5)


def interpolate_weights(start: dict, average: dict, share: float) -> dict:
    """The weights ``share`` of the way from ``start`` to ``average`` (0: the start, 1: the average)."""
    return {key: start[key] + share * (average[key] - start[key]) for key in start}


class WarmRun:
    """One warm-started run's state: the student and its adapter, the optimiser, the moving average
    of the weights, the step, the cached lines and the run's ``metrics.jsonl``."""

    suffix = "-warm"  # what the exported package's name gets

    def __init__(
        self,
        cache: str | Path,
        out: str | Path,
        student: str | Path,
        batch_size: int,
        lr: float,
        weights: dict[str, float],
        seed: int,
        ema_decay: float,
        log,
        optimizer: str = "adamw",
        train_only: str | None = None,
        blank_offset: float = 0.0,
        interpolate: float = 1.0,
    ):
        from .train import MetricsLog

        self.out, self.student, self.batch_size, self.lr = Path(out), student, batch_size, lr
        self.blank_offset, self.interpolate = blank_offset, interpolate
        self.weights, self.seed, self.ema_decay, self.log = weights, seed, ema_decay, log
        self.out.mkdir(parents=True, exist_ok=True)
        meta = json.loads((Path(cache) / "cache.json").read_text())
        self.spec = ModelSpec.from_file(student)
        axis = self.axis = CharAxis.build(self.spec, ModelSpec.from_file(meta["teacher"]))
        self.items = load_cache(cache)
        self.model = WarmStudent(student, axis, teacher_channels=self.items[0]["feats"].shape[1])
        self.model.feat_mean, self.model.feat_std = feature_stats(self.items)
        self.per_epoch = sum(1 for _ in batches(self.items, batch_size, seed, 0))
        if train_only:  # e.g. "linear_": the classifier head alone, the features kept as they are
            for onnx_name, key in self.model.graph.param_of.items():
                self.model.graph.params[key].requires_grad_(onnx_name.startswith(train_only))
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        # SGD's steps follow the gradient's size; Adam moves every weight by about lr, which drifts
        # the small ones of a converted graph (folded biases) far in relative terms
        self.optimiser = (
            torch.optim.SGD(self.params, lr=lr, momentum=0.9)
            if optimizer == "sgd"
            else torch.optim.AdamW(self.params, lr=lr, weight_decay=0.0)
        )
        self.step, self.epoch = 0, 0
        self.ema = {key: p.detach().clone() for key, p in self.model.graph.params.items()}
        self.start = {key: p.clone() for key, p in self.ema.items()}
        self.ckpt = self.out / "last.pt"
        self.lineage = {
            "student": str(student),
            "teacher": meta["teacher"],
            "cache_lines": len(self.items),
            "weights": weights,
            "lr": lr,
            "batch_size": batch_size,
            "seed": seed,
            "optimizer": optimizer,
        }
        self.metrics = MetricsLog(self.out / "metrics.jsonl")

    def resume(self) -> None:
        if self.ckpt.exists():
            state = torch.load(self.ckpt, weights_only=False)
            self.model.load_state_dict(state["model"])
            self.optimiser.load_state_dict(state["optimiser"])
            self.ema, self.step, self.epoch = state["ema"], state["step"], state["epoch"]
            self.log(json.dumps({"resumed": str(self.ckpt), "step": self.step}))

    def save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save(
            {
                "model": self.model.state_dict(),
                "optimiser": self.optimiser.state_dict(),
                "step": self.step,
                "epoch": self.epoch,
                "ema": self.ema,
            },
            tmp,
        )
        tmp.rename(self.ckpt)

    def exported(self) -> dict[str, torch.Tensor]:
        """The weights the package gets: the moving average or, with ``interpolate`` < 1, the point
        that share of the way from the starting weights to it (an average of the fine-tuned and the
        starting model keeps what the start read well, where the fine-tuned one forgets some)."""
        return self.ema if self.interpolate >= 1.0 else interpolate_weights(self.start, self.ema, self.interpolate)

    def evaluate(self, dev_data: str | None, eval_data, eval_lines: int) -> dict:
        """Export the averaged weights and score them through the serving path; the record logged."""
        lineage = {**self.lineage, "steps": self.step, "ema_decay": self.ema_decay, "interpolate": self.interpolate}
        path = export(
            self.model,
            self.student,
            self.out / "student.onnx",
            lineage,
            self.exported(),
            self.blank_offset,
            self.suffix,
        )
        record = {"step": self.step}
        if dev_data:
            record["dev_char_accuracy"] = score(path, [dev_data], eval_lines)[Path(dev_data).name]
        if eval_data:
            scores = score(path, list(eval_data), eval_lines)
            record.update({f"ood_{k}": v for k, v in scores.items()})
            record["ood_char_accuracy"] = round(sum(scores.values()) / len(scores), 5)
        self.metrics(record)
        self.log(json.dumps(record))
        return record

    def train_step(self, group: list[int], steps: int, adapter_warmup: int) -> dict[str, float]:
        for g in self.optimiser.param_groups:
            g["lr"] = lr_at(self.step, steps, self.lr)
        loss, parts = warm_loss(
            self.model, self.batch_for(group), self.weights, train_backbone_on_features=self.step >= adapter_warmup
        )
        penalty = self.penalty()
        if penalty is not None:
            loss = loss + penalty
            parts["penalty"] = float(penalty)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.optimiser.step()
        with torch.no_grad():
            for key, p in self.model.graph.params.items():
                self.ema[key].mul_(self.ema_decay).add_(p.detach(), alpha=1 - self.ema_decay)
        self.step += 1
        return parts

    def penalty(self) -> torch.Tensor | None:
        """A loss term on the weights themselves, added to every step's (none here)."""
        return None

    def batch_for(self, group: list[int]) -> dict:
        return collate([self.items[i] for i in group], self.spec)

    def groups(self):
        """The batches from the current step on, epoch after epoch (a resumed run skips what it did)."""
        while True:
            skip = self.step - self.epoch * self.per_epoch
            for k, group in enumerate(batches(self.items, self.batch_size, self.seed, self.epoch)):
                if k >= skip:
                    yield group
            self.epoch += 1


def _log_losses(run: WarmRun, steps: int, sums: dict[str, float], count: int, t0: float) -> None:
    """Record the loss terms averaged over the last ``count`` steps, in ``metrics.jsonl`` and the log."""
    record = {
        "step": run.step,
        "lr": round(lr_at(run.step, steps, run.lr), 8),
        "sec": round((time.time() - t0) / count, 3),
        **{k: round(v / count, 5) for k, v in sums.items()},
    }
    run.metrics(record)
    run.log(json.dumps({**record, "epoch": run.epoch}))


def _train_until(
    run: WarmRun, steps, adapter_warmup, eval_every, checkpoint_seconds, dev_data, eval_data, eval_lines, stop=None
):
    """Train from the run's step up to ``stop`` (default: ``steps``, the length the learning rate's
    schedule spans): the loss every 50 steps, a checkpoint every ``checkpoint_seconds`` and before
    each evaluation, which comes every ``eval_every`` steps."""
    run.model.train()
    stop = steps if stop is None else stop
    last_save, sums, count, t0 = time.time(), {}, 0, time.time()
    for group in run.groups():
        if run.step >= stop:
            break
        for key, v in run.train_step(group, steps, adapter_warmup).items():
            sums[key] = sums.get(key, 0.0) + v
        count += 1
        if run.step % 50 == 0 or run.step == stop:
            _log_losses(run, steps, sums, count, t0)
            sums, count, t0 = {}, 0, time.time()
        if time.time() - last_save > checkpoint_seconds or (run.step % eval_every == 0 and run.step < steps):
            run.save()
            last_save = time.time()
        if run.step % eval_every == 0 and run.step < steps:
            run.evaluate(dev_data, eval_data, eval_lines)


def train(
    cache: str | Path,
    out: str | Path,
    student: str | Path,
    steps: int,
    batch_size: int = 16,
    lr: float = 3e-5,
    weights: dict[str, float] | None = None,
    seed: int = 0,
    threads: int = 1,
    eval_data: list[str] = (),
    eval_lines: int = 100,
    eval_every: int = 500,
    checkpoint_seconds: float = 300,
    adapter_warmup: int = 200,
    ema_decay: float = 0.998,
    dev_data: str | None = None,
    log=print,
    optimizer: str = "adamw",
    train_only: str | None = None,
    blank_offset: float = 0.0,
    interpolate: float = 1.0,
) -> Path:
    """Refine ``student`` on the cached lines for ``steps`` steps; resumes from ``out/last.pt``.
    Every ``eval_every`` steps (and at the end) the package is exported and scored through the
    serving path on ``dev_data`` (``dev_char_accuracy``) and on each ``eval_data`` folder
    (``ood_<name>``, ``eval_lines`` lines each); ``metrics.jsonl`` holds the run's start, loss
    and evaluation records in ``engine.report``'s format. The last export is
    ``out/student.onnx``. For the first ``adapter_warmup`` steps the feature term trains the
    adapter only. What is exported is the exponential moving average of the weights
    (``ema_decay`` per step, from the starting model): a refined model keeps what it knew better
    than its last step does (``interpolate`` < 1: that share of the way from the start to it; a
    finished run given again only exports again). SIGTERM saves a checkpoint and stops."""
    import signal

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    weights = weights or {"ctc": 1.0, "kd": 1.0, "feat": 0.1}
    args = (cache, out, student, batch_size, lr, weights, seed, ema_decay, log, optimizer, train_only, blank_offset)
    run = WarmRun(*args, interpolate=interpolate)
    run.resume()
    run.metrics({"event": "start", "step": run.step, "steps": steps, "warm_start": True, **run.lineage})

    def on_term(signum, frame):
        run.save()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    if run.step == 0 and (eval_data or dev_data):
        run.evaluate(dev_data, eval_data, eval_lines)
    _train_until(run, steps, adapter_warmup, eval_every, checkpoint_seconds, dev_data, eval_data, eval_lines)
    run.save()
    run.evaluate(dev_data, eval_data, eval_lines)
    run.metrics({"event": "done", "step": steps})
    return run.out / "student.onnx"
