"""Time of one student distillation step on the CPU: the padded baseline against packed heads and
width buckets, on the same rendered lines, in one process.

Variants (each times forward + loss + backward of the student, one torch thread; the teacher's
top-k targets are fixed inputs here, as they arrive from the data workers in training):

* ``padded``: classifier and losses over every padded timestep, ``torch.nn.functional.ctc_loss``
  (the step as it was before packing);
* ``packed``: ``CRNN.forward_head_packed`` and ``distill.losses`` (classifier, log-softmax,
  CTC and KD on valid timesteps only, CTC over each line's own labels);
* ``packed+bucket``: the same, on batches regrouped by width (``BucketCollate``, 4 batches).

    .venv/bin/python -m bench.train_step [--groups 4] [--batch-size 32] [--repeat 2]

It prints one JSON object per variant (median ms per step, padding share) and each
variant's ratio against ``padded``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from distill.data import BucketCollate, Collate, SyntheticLines
from distill.losses import DistillationLoss, Packed, ctc_loss, sparse_kd_loss, time_mask
from distill.models import build
from engine.charset import load_charset


def fake_top_k(batch: dict, classes: int, k: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    n, steps = len(batch["texts"]), batch["images"].shape[3] // 4
    gen = torch.Generator().manual_seed(steps)
    idx = torch.randint(0, classes, (n, steps, k), generator=gen)
    logp = torch.randn(n, steps, k, generator=gen).log_softmax(-1)
    return idx, logp


def padded_step(model, batch, top_k) -> torch.Tensor:
    logits = model(batch["images"])
    log_probs = logits.float().log_softmax(-1).permute(1, 0, 2)
    ctc = F.ctc_loss(
        log_probs,
        batch["targets"],
        batch["input_lengths"],
        batch["target_lengths"],
        reduction="mean",
        zero_infinity=True,
    )
    kd = sparse_kd_loss(logits, *top_k, batch["input_lengths"])
    return 0.6 * kd + 0.4 * ctc


def packed_step(model, batch, top_k, loss_fn) -> torch.Tensor:
    logits = model.forward_head_packed(model.forward_features(batch["images"]), batch["input_lengths"])
    return loss_fn(logits, batch["targets"], batch["input_lengths"], batch["target_lengths"], teacher_top_k=top_k)[
        "total"
    ]


def padding(batches) -> float:
    valid = sum(int(b["input_lengths"].sum()) for b in batches)
    return 1 - valid / sum(b["images"].shape[0] * b["images"].shape[3] // 4 for b in batches)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--groups", type=int, default=4, help="batches regrouped together by width")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--supers", type=int, default=3, help="how many groups of lines to render")
    parser.add_argument("--repeat", type=int, default=2, help="timed passes over the batches")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    charset = load_charset()
    count = args.groups * args.batch_size * args.supers
    ds = SyntheticLines(count, split="train", seed=11)
    lines = [ds[i] for i in range(count)]
    collate = Collate(charset)
    plain = [collate(lines[i : i + args.batch_size]) for i in range(0, count, args.batch_size)]
    bucketed = []
    group = args.groups * args.batch_size
    for i in range(0, count, group):
        bucketed.extend(BucketCollate(collate, args.batch_size)(lines[i : i + group]))
    model = build("student", len(charset)).train()
    loss_fn = DistillationLoss(alpha=0.6, top_k=8)
    variants = {
        "padded": (plain, lambda b, t: padded_step(model, b, t)),
        "packed": (plain, lambda b, t: packed_step(model, b, t, loss_fn)),
        "packed+bucket": (bucketed, lambda b, t: packed_step(model, b, t, loss_fn)),
    }
    targets = {id(b): fake_top_k(b, len(charset)) for b in plain + bucketed}
    times: dict[str, list[float]] = {name: [] for name in variants}
    for batches, fn in variants.values():  # warm-up
        fn(batches[0], targets[id(batches[0])]).backward()
    for _ in range(args.repeat):
        for name, (batches, fn) in variants.items():  # interleaved, so load drifts hit all alike
            for b in batches:
                model.zero_grad(set_to_none=True)
                t0 = time.perf_counter()
                fn(b, targets[id(b)]).backward()
                times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["padded"])
    for name, (batches, _) in variants.items():
        med = statistics.median(times[name])
        print(
            json.dumps(
                {
                    "variant": name,
                    "ms_per_step_p50": round(med * 1000, 1),
                    "steps": len(times[name]),
                    "padding_share": round(padding(batches), 3),
                    "ratio_vs_padded": round(med / base, 3),
                }
            )
        )
    print(json.dumps(ctc_agreement(model, plain[0])))
    return 0


def ctc_agreement(model, b: dict) -> dict:
    """PyTorch's CTC loss and ours on the packed steps, for one batch: the two must agree."""
    logits = model(b["images"]).detach()
    ref = F.ctc_loss(
        logits.log_softmax(-1).permute(1, 0, 2),
        b["targets"],
        b["input_lengths"],
        b["target_lengths"],
        reduction="mean",
        zero_infinity=True,
    )
    mask = time_mask(b["input_lengths"], logits.shape[1])
    ours = ctc_loss(Packed(logits[mask], mask), b["targets"], b["input_lengths"], b["target_lengths"])
    return {"ctc_reference": round(float(ref), 5), "ctc_packed": round(float(ours), 5)}


if __name__ == "__main__":
    raise SystemExit(main())
