"""Training loops: CTC training and distillation, as short functions with
explicit arguments, plus checkpoints (resume) and in-run dev evaluation."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from engine.charset import Charset
from engine.ctc import path_text

from .data import BucketCollate, Collate, LabelledLines, MixedLines, SyntheticLines
from .evaluate import char_accuracy, clean_for_scoring, edit_distance
from .losses import DistillationLoss
from .models import build


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _worker_init(_):
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)


class _Batches:
    """Iterates the batches of a loader whose items are lists of batches."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    def __iter__(self):
        for batches in self.loader:
            yield from batches


def train_loader(
    charset: Charset,
    batch_size: int,
    total_steps: int,
    start_step: int = 0,
    seed: int = 0,
    workers: int = 1,
    max_strength: float = 1.0,
    train_data: str | Path | None = None,
    train_data_share: float = 0.3,
    teacher=None,
    top_k: int = 0,
    bucket: int = 4,
    ramp: bool = True,
    mix: str = "v1",
) -> _Batches:
    """Deterministic on-the-fly training batches for steps start_step..total_steps-1, with the lines
    of a labels.tsv folder mixed in when ``train_data`` is given. The lines of ``bucket``
    consecutive batches are regrouped by width (``BucketCollate``; 1 = off): a batch of random
    synthetic lines is otherwise about half padding. A ``teacher`` here (per-line CPU teachers
    only) runs in the data workers and adds its targets (``top_k`` classes per timestep, or dense
    with 0) to every batch. ``ramp`` False starts the augmentation at full strength; ``mix`` is the
    synthetic data's (``data.MIXES``)."""
    ds = SyntheticLines(
        total_steps * batch_size, split="train", seed=seed, max_strength=max_strength, ramp=ramp, mix=mix
    )
    if train_data is not None:
        ds = MixedLines(ds, LabelledLines(train_data, split="train"), charset, train_data_share)
    subset = Subset(ds, range(start_step * batch_size, total_steps * batch_size))
    collate = BucketCollate(Collate(charset, teacher=teacher, top_k=top_k), batch_size)
    return _Batches(
        DataLoader(
            subset,
            batch_size=batch_size * max(bucket, 1),
            shuffle=False,
            num_workers=workers,
            collate_fn=collate,
            worker_init_fn=_worker_init if workers else None,
            multiprocessing_context="spawn" if workers else None,
            persistent_workers=False,
            prefetch_factor=2 if workers else None,
        )
    )


def dev_batches(charset: Charset, count: int = 200, batch_size: int = 50, seed: int = 777) -> list[dict]:
    """A fixed in-memory dev sample (held-out fonts and texts): half clean, half degraded."""
    clean = SyntheticLines(count // 2, split="dev", seed=seed, strength=0.0)
    rough = SyntheticLines(count - count // 2, split="dev", seed=seed + 1, strength=0.8)
    items = [clean[i] for i in range(len(clean))] + [rough[i] for i in range(len(rough))]
    collate = Collate(charset)
    return [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


def eval_sets(charset: Charset, folders, per_set: int = 100, batch_size: int = 50) -> dict[str, list[dict]]:
    """Fixed in-run evaluation samples of ``labels.tsv`` folders (the out-of-distribution suite's
    subsets): ``per_set`` lines spread evenly over each folder, sorted by width into batches so
    little of a batch is padding, keyed by the folder's name. Lines holding a character the
    charset lacks are left out (no model of ours could read them)."""
    collate = Collate(charset)
    out = {}
    for folder in folders:
        name = Path(folder).name
        if name in out:
            raise ValueError(f"{folder}: a second folder named {name!r}")
        lines = LabelledLines(folder)
        keep = [i for i, (_, text) in enumerate(lines.items) if charset.covers(text)]
        if not keep:
            raise ValueError(f"{folder}: no line the charset covers")
        n = min(per_set, len(keep))
        items = sorted((lines[keep[k * len(keep) // n]] for k in range(n)), key=lambda item: item[0].shape[1])
        out[name] = [collate(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]
    return out


def dev_metrics(model: torch.nn.Module, dev: list[dict], ood: dict[str, list[dict]], charset: Charset) -> dict:
    """What an in-run evaluation logs: char and line accuracy on the generator's dev lines, and
    char accuracy on every out-of-distribution sample (``ood_<name>``) and their mean
    (``ood_char_accuracy``), all rounded to 5 places."""
    acc = greedy_accuracy(model, dev, charset)
    record = {"dev_char_accuracy": round(acc["char_accuracy"], 5), "dev_line_accuracy": round(acc["line_accuracy"], 5)}
    if ood:
        scores = {name: greedy_accuracy(model, batches, charset)["char_accuracy"] for name, batches in ood.items()}
        record.update({f"ood_{name}": round(v, 5) for name, v in scores.items()})
        record["ood_char_accuracy"] = round(sum(scores.values()) / len(scores), 5)
    return record


@torch.no_grad()
def greedy_accuracy(model: torch.nn.Module, batches: list[dict], charset: Charset) -> dict:
    was_training = model.training
    model.eval()
    errors = total = exact = lines = 0
    device = next(model.parameters()).device
    for batch in batches:
        best = model(batch["images"].to(device)).argmax(-1).cpu()
        for k, text in enumerate(batch["texts"]):
            pred = path_text(best[k, : batch["input_lengths"][k]].numpy(), charset.classes, charset.blank_index)
            gt, pr = clean_for_scoring(text), clean_for_scoring(pred)
            errors += edit_distance(gt, pr)
            total += len(gt)
            exact += gt == pr
            lines += 1
    model.train(was_training)
    return {"char_accuracy": char_accuracy(errors, total), "line_accuracy": exact / max(lines, 1)}


def ctc_step(model, batch, loss_fn: DistillationLoss) -> dict:
    logits = model.forward_head_packed(model.forward_features(batch["images"]), batch["input_lengths"])
    return loss_fn(logits, batch["targets"], batch["input_lengths"], batch["target_lengths"])


def distill_step(student, teacher, batch, loss_fn: DistillationLoss) -> dict:
    top_k = None
    if "teacher_top_k_idx" in batch:  # computed by the data workers
        teacher_logits, teacher_features = None, None
        top_k = (batch["teacher_top_k_idx"], batch["teacher_top_k_logp"])
    elif "teacher_logits" in batch:
        teacher_logits, teacher_features = batch["teacher_logits"], None
    else:
        teacher_logits, teacher_features = teacher(batch["images"], batch["input_lengths"])
    features = student.forward_features(batch["images"])
    logits = student.forward_head_packed(features, batch["input_lengths"])
    return loss_fn(
        logits,
        batch["targets"],
        batch["input_lengths"],
        batch["target_lengths"],
        teacher_logits=teacher_logits,
        student_features=features,
        teacher_features=teacher_features,
        kd_lengths=teacher.kd_lengths(batch),
        teacher_top_k=top_k,
    )


def optimizer_for(params, lr: float, weight_decay: float, total_steps: int):
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, total_steps=max(total_steps, 2), pct_start=0.08, div_factor=10.0, final_div_factor=50.0
    )
    return optimizer, scheduler


def save_checkpoint(
    path: Path,
    *,
    arch: str,
    model,
    optimizer=None,
    scheduler=None,
    loss_fn=None,
    step: int = 0,
    config: dict | None = None,
    metrics: dict | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"arch": arch, "model": model.state_dict(), "step": step, "config": config or {}, "metrics": metrics or {}}
    if hasattr(model, "num_classes"):  # a recogniser; a detector has no class axis
        state["num_classes"] = model.num_classes
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    if scheduler is not None:
        state["scheduler"] = scheduler.state_dict()
    if loss_fn is not None:
        state["loss"] = loss_fn.state_dict()
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_model(path: str | Path) -> tuple[torch.nn.Module, dict]:
    state = torch.load(path, map_location="cpu", weights_only=False)
    model = build(state["arch"], state["num_classes"])
    model.load_state_dict(state["model"])
    return model, state


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_steps(
    model,
    loader,
    optimizer,
    scheduler,
    step_fn,
    *,
    start_step: int,
    total_steps: int,
    log,
    on_step=None,
    clip: float = 5.0,
    progress: bool = True,
) -> int:
    """Run optimisation steps from ``start_step``; ``step_fn(batch) -> dict of loss terms``.
    ``on_step(step)`` runs after each step (checkpoints, evaluation). Returns the last step + 1."""
    from tqdm import tqdm

    model.train()
    step = start_step
    bar = tqdm(total=total_steps, initial=start_step, disable=not progress, mininterval=10, dynamic_ncols=True)
    t0 = time.time()
    device = next(model.parameters()).device
    for batch in loader:
        terms = step_fn(to_device(batch, device))
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], clip)
        optimizer.step()
        scheduler.step()
        step += 1
        values = {k: round(float(v.detach()), 5) for k, v in terms.items()}
        bar.update(1)
        bar.set_postfix(values, refresh=False)
        if step % 20 == 0 or step == total_steps:
            log({"step": step, "lr": scheduler.get_last_lr()[0], "sec": round(time.time() - t0, 1), **values})
        if on_step is not None:
            on_step(step)
        if step >= total_steps:
            break
    bar.close()
    return step


def _model_and_loss(
    arch: str, charset: Charset, teacher, init: str | None, alpha: float, beta: float, temperature: float, kd_top_k: int
) -> tuple[torch.nn.Module, DistillationLoss]:
    """The model to train (from ``init``'s weights when given) and its loss: CTC alone without a
    teacher, CTC plus distillation terms with one."""
    model = build(arch, len(charset))
    if init:
        model.load_state_dict(load_model(init)[0].state_dict())
    use_kd = teacher is not None
    loss_fn = DistillationLoss(
        alpha=alpha if use_kd else 0.0,
        beta=beta if use_kd else 0.0,
        temperature=temperature,
        top_k=kd_top_k,
        student_channels=model.feature_channels,
        teacher_channels=getattr(teacher, "feature_channels", None) if use_kd else None,
    )
    return model, loss_fn


def resume_from(ckpt: Path, model, optimizer, scheduler, loss_fn, lr: float, steps: int):
    """Load ``ckpt`` (model, optimizer, schedule, loss state) into the run; returns (start step,
    scheduler). A run lengthened or shortened since the checkpoint continues a one-cycle schedule
    over the new total."""
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if "loss" in state:
        loss_fn.load_state_dict(state["loss"])
    start = state["step"]
    if state.get("config", {}).get("steps", steps) != steps:
        # OneCycleLR reads these keys from the groups when resuming; set them from --lr
        for group in optimizer.param_groups:
            group.update(initial_lr=lr / 10.0, max_lr=lr, min_lr=lr / 10.0 / 50.0)
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=lr,
            total_steps=max(steps, start + 2),
            pct_start=0.08,
            div_factor=10.0,
            final_div_factor=50.0,
            last_epoch=start - 1,
        )
    return start, scheduler


class MetricsLog:
    """Appends one JSON record per line to a run's ``metrics.jsonl`` (read by ``engine.report``)."""

    def __init__(self, path: Path):
        self.path = path

    def __call__(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class StepHooks:
    """What runs between optimisation steps, for the recogniser's and the detector's training: an
    evaluation (``evaluate()`` returns the record to log) every ``eval_every`` steps and on the
    last one (``eval_every`` 0: never), a checkpoint every ``checkpoint_seconds`` or every
    ``checkpoint_every`` steps (whichever is given) and on the last step, and one on SIGTERM
    (``on_term``) at the last step done."""

    def __init__(
        self,
        save,
        evaluate,
        log,
        *,
        start: int,
        steps: int,
        eval_every: int,
        checkpoint_seconds: float | None = None,
        checkpoint_every: int | None = None,
    ):
        if (checkpoint_seconds is None) == (checkpoint_every is None) or (
            checkpoint_every is not None and checkpoint_every < 1
        ):
            raise ValueError("give checkpoint_seconds, or checkpoint_every of at least one step")
        self.save, self.evaluate, self.log = save, evaluate, log
        self.steps, self.eval_every = steps, eval_every
        self.checkpoint_seconds, self.checkpoint_every = checkpoint_seconds, checkpoint_every
        self.current = start
        self.last_save = time.time()

    def checkpoint(self, step: int) -> None:
        self.save(step)
        self.last_save = time.time()

    def on_step(self, step: int) -> None:
        self.current = step
        if self.eval_every and (step % self.eval_every == 0 or step == self.steps):
            self.log({"step": step, **self.evaluate()})
        if self.checkpoint_every:
            due = step % self.checkpoint_every == 0
        else:
            due = time.time() - self.last_save > self.checkpoint_seconds
        if due or step == self.steps:
            self.checkpoint(step)

    def on_term(self, signum, frame):
        self.checkpoint(self.current)
        raise SystemExit(128 + signum)


class _Parts(NamedTuple):
    """What a run trains and checkpoints: the model, its loss, and their optimizer and schedule."""

    model: torch.nn.Module
    loss_fn: DistillationLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


def _model_on(device: torch.device, arch, charset, teacher, init, alpha, beta, temperature, kd_top_k, lr, wd, steps):
    """The model and its loss on ``device`` (a movable teacher too), with their optimizer and schedule."""
    model, loss_fn = _model_and_loss(arch, charset, teacher, init, alpha, beta, temperature, kd_top_k)
    model.to(device)
    loss_fn.to(device)
    if teacher is not None and hasattr(teacher, "to"):
        teacher.to(device)
    optimizer, scheduler = optimizer_for(list(model.parameters()) + list(loss_fn.parameters()), lr, wd, steps)
    return _Parts(model, loss_fn, optimizer, scheduler)


def _resumed(ckpt: Path, resume: bool, parts: _Parts, lr: float, steps: int) -> tuple[_Parts, int]:
    """(the parts, the start step): loaded from ``ckpt`` when resuming and it exists, else as they are at step 0."""
    if not (resume and ckpt.exists()):
        return parts, 0
    start, scheduler = resume_from(ckpt, parts.model, parts.optimizer, parts.scheduler, parts.loss_fn, lr, steps)
    return parts._replace(scheduler=scheduler), start


def _training_hooks(ckpt: Path, parts: _Parts, config: dict, log, dev, ood, charset, start, every, secs) -> StepHooks:
    """Step hooks that checkpoint the run to ``ckpt`` and score the dev lines and eval sets."""
    return StepHooks(
        lambda step: save_checkpoint(
            ckpt,
            arch=config["arch"],
            model=parts.model,
            optimizer=parts.optimizer,
            scheduler=parts.scheduler,
            loss_fn=parts.loss_fn,
            step=step,
            config=config,
        ),
        lambda: dev_metrics(parts.model, dev, ood, charset),
        log,
        start=start,
        steps=config["steps"],
        eval_every=every,
        checkpoint_seconds=secs,
    )


def _run_loader(charset: Charset, config: dict, start: int, workers: int, train_data, train_data_share, teacher):
    """The run's training batches from ``start`` on, with the settings in ``config``."""
    # a per-line (ONNX, CPU) teacher runs in the data workers, beside the student's step
    loader_teacher = teacher if teacher is not None and workers > 0 and getattr(teacher, "per_line", False) else None
    return train_loader(
        charset,
        config["batch_size"],
        config["steps"],
        start,
        config["seed"],
        workers,
        config["max_strength"],
        train_data,
        train_data_share,
        teacher=loader_teacher,
        top_k=config["kd_top_k"],
        bucket=config["bucket"],
        ramp=config["ramp"],
        mix=config["mix"],
    )


def _train_from(parts: _Parts, teacher, loader, log, hooks: StepHooks, start: int, steps: int, progress: bool) -> None:
    """The optimisation steps from ``start``: distillation with a teacher, CTC alone without."""
    model, loss_fn = parts.model, parts.loss_fn
    if teacher is not None:
        step_fn = lambda batch: distill_step(model, teacher, batch, loss_fn)  # noqa: E731
    else:
        step_fn = lambda batch: ctc_step(model, batch, loss_fn)  # noqa: E731
    train_steps(
        model,
        loader,
        parts.optimizer,
        parts.scheduler,
        step_fn,
        start_step=start,
        total_steps=steps,
        log=log,
        on_step=hooks.on_step,
        progress=progress,
    )


def run_training(
    *,
    arch: str,
    run_dir: str | Path,
    charset: Charset,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int = 0,
    workers: int = 1,
    teacher=None,
    alpha: float = 0.6,
    beta: float = 0.0,
    temperature: float = 2.0,
    weight_decay: float = 0.01,
    eval_every: int = 200,
    checkpoint_seconds: float = 240.0,
    resume: bool = True,
    init: str | None = None,
    max_strength: float = 1.0,
    progress: bool = True,
    train_data: str | Path | None = None,
    train_data_share: float = 0.3,
    device: str = "cpu",
    kd_top_k: int = 8,
    bucket: int = 4,
    ramp: bool = True,
    mix: str = "v1",
    eval_data=(),
    eval_lines: int = 100,
) -> Path:
    """Train ``arch`` with CTC (teacher None) or distil it from ``teacher``.
    Writes ``run_dir/last.pt`` (resumable) and ``run_dir/metrics.jsonl``. Every evaluation
    scores the generator's dev lines and ``eval_lines`` lines of each ``eval_data`` folder."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = run_dir / "last.pt"
    set_seed(seed)
    use_kd = teacher is not None
    device = torch.device(device)
    parts = _model_on(device, arch, charset, teacher, init, alpha, beta, temperature, kd_top_k, lr, weight_decay, steps)
    config = dict(arch=arch, steps=steps, batch_size=batch_size, lr=lr, seed=seed, kd=use_kd, device=str(device))
    config.update(alpha=alpha, beta=beta, temperature=temperature, kd_top_k=kd_top_k)  # the loss
    config.update(max_strength=max_strength, ramp=ramp, bucket=bucket, mix=mix)  # the data
    parts, start = _resumed(ckpt, resume, parts, lr, steps)
    log = MetricsLog(run_dir / "metrics.jsonl")
    log({"event": "start", "step": start, **config})
    dev = dev_batches(charset)
    ood = eval_sets(charset, eval_data, eval_lines)
    hooks = _training_hooks(ckpt, parts, config, log, dev, ood, charset, start, eval_every, checkpoint_seconds)
    signal.signal(signal.SIGTERM, hooks.on_term)
    if start < steps:
        loader = _run_loader(charset, config, start, workers, train_data, train_data_share, teacher)
        _train_from(parts, teacher, loader, log, hooks, start, steps, progress)
    log({"event": "done", "step": steps})
    return ckpt
