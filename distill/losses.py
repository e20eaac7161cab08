"""Training losses: CTC, CTC knowledge distillation and feature mimicking.

``DistillationLoss`` returns a dict of named terms so each one can be logged:
``total = alpha * kd + (1 - alpha) * ctc + beta * feat``.

The student's logits come padded, [N, T, C], or as ``Packed`` rows of the valid
timesteps only (``CRNN.forward_head_packed``); both give the same losses.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


def time_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[N, T] boolean mask, True where t < length."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


class Packed(NamedTuple):
    """Logits of the valid timesteps only: ``values`` [M, C] are the rows where ``mask`` [N, T]
    is True, in (line, time) order, as ``padded[mask]`` would give them."""

    values: torch.Tensor
    mask: torch.Tensor


def _rows(x: torch.Tensor, packed: Packed) -> torch.Tensor:
    """[N, T, ...] -> the [M, ...] rows of ``packed``'s timesteps."""
    return x[packed.mask.to(x.device)]


def _masked_mean(per_step: torch.Tensor, lengths: torch.Tensor, steps: int, packed: Packed | None) -> torch.Tensor:
    """Sum of ``per_step`` over t < lengths[n], over the number of such steps."""
    mask = time_mask(lengths, steps)
    if packed is not None:
        mask = mask[packed.mask]
    mask = mask.to(per_step.dtype)
    return (per_step * mask).sum() / mask.sum().clamp_min(1.0)


NEG = -1e30  # log(0) that keeps gradients finite where a path is impossible


def ctc_loss(
    logits: torch.Tensor | Packed,
    targets: torch.Tensor,
    input_lengths: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
) -> torch.Tensor:
    """CTC on [N, T, C] (or packed) logits; mean over the batch of per-line loss / label length,
    lines whose label cannot fit counting 0 (as ``F.ctc_loss(reduction="mean", zero_infinity=True)``).

    ``targets`` are the labels concatenated. The forward (alpha) recursion runs in log space over
    each line's own labels only: after one log-softmax over all classes, only the blank's and the
    label's columns enter the recursion, so the loss and its backward never touch the other
    ~6,900 classes at every timestep. Autograd gives the exact gradient.
    """
    packed = logits if isinstance(logits, Packed) else None
    values = packed.values if packed is not None else logits
    log_probs = values.float().log_softmax(-1)  # [M, C] or [N, T, C]
    n = target_lengths.shape[0]
    device = log_probs.device
    input_lengths, target_lengths = input_lengths.to(device), target_lengths.to(device)
    max_len = int(target_lengths.max()) if n else 0
    labels = torch.full((n, max_len), blank, dtype=torch.long, device=device)
    labels[time_mask(target_lengths, max_len)] = targets.to(device)
    ext = torch.full((n, 2 * max_len + 1), blank, dtype=torch.long, device=device)  # blank, l1, blank, l2, ...
    ext[:, 1::2] = labels
    states = ext.shape[1]
    if packed is not None:
        mask = packed.mask.to(device)
        line_of = mask.nonzero()[:, 0]
        rows = log_probs.gather(1, ext[line_of])  # [M, S]
        steps = mask.shape[1]
        emit = rows.new_full((n, steps, states), 0.0).index_put((mask,), rows)
    else:
        steps = log_probs.shape[1]
        emit = log_probs.gather(2, ext[:, None, :].expand(n, steps, states))  # [N, T, S]
    # a label state may skip the blank before it unless it repeats the previous label
    skip = torch.zeros(n, states, dtype=torch.bool, device=device)
    skip[:, 3::2] = ext[:, 3::2] != ext[:, 1:-2:2]
    neg = emit.new_full((n, 1), NEG)
    alpha = emit.new_full((n, states), NEG)
    alpha = torch.cat([emit[:, 0, :2], alpha[:, 2:]], dim=1) if states > 1 else emit[:, 0, :1]
    for t in range(1, steps):
        stay, step1 = alpha, torch.cat([neg, alpha[:, :-1]], dim=1)
        step2 = torch.where(skip, torch.cat([neg, neg, alpha[:, :-2]], dim=1)[:, :states], NEG)
        new = torch.logsumexp(torch.stack([stay, step1, step2]), dim=0) + emit[:, t]
        alpha = torch.where((t < input_lengths)[:, None], new, alpha)
    last = (2 * target_lengths).clamp_max(states - 1)
    end = alpha.gather(1, last[:, None])[:, 0]
    before = alpha.gather(1, (last - 1).clamp_min(0)[:, None])[:, 0]
    before = torch.where(target_lengths > 0, before, NEG)
    nll = -torch.logaddexp(end, before)
    feasible = (nll < -NEG / 2) & (input_lengths > 0)
    per_line = torch.where(feasible, nll, 0.0) / target_lengths.clamp_min(1).to(nll.dtype)
    return per_line.mean()


def ctc_kd_loss(
    student_logits: torch.Tensor | Packed, teacher_logits: torch.Tensor, lengths: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Per-timestep KL(teacher || student) at ``temperature``, masked by sequence
    length and normalised by the total number of valid timesteps (times T^2 so the
    gradient scale does not depend on the temperature).

    ``teacher_logits`` may be logits or log-probabilities; both give the same
    softmax.
    """
    packed = student_logits if isinstance(student_logits, Packed) else None
    shape = (*packed.mask.shape, packed.values.shape[-1]) if packed is not None else tuple(student_logits.shape)
    if shape != tuple(teacher_logits.shape):
        raise ValueError(f"student {shape} and teacher {tuple(teacher_logits.shape)} differ")
    if packed is not None:
        student_logits, teacher_logits = packed.values, _rows(teacher_logits, packed)
    t = float(temperature)
    log_s = (student_logits.float() / t).log_softmax(-1)
    log_p = (teacher_logits.float() / t).log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_s)).sum(-1)  # [N, T] or [M]
    return _masked_mean(kl, lengths, shape[1], packed) * (t * t)


def top_k_targets(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(class indices, log-probabilities) of the teacher's ``k`` most likely classes per timestep."""
    log_p = teacher_logits.float().log_softmax(-1)
    values, indices = log_p.topk(min(k, log_p.shape[-1]), dim=-1)
    return indices, values


def sparse_kd_loss(
    student_logits: torch.Tensor | Packed,
    teacher_indices: torch.Tensor,
    teacher_log_probs: torch.Tensor,
    lengths: torch.Tensor,
    temperature: float = 2.0,
) -> torch.Tensor:
    """KL(teacher || student) with the teacher truncated to its top-k classes per timestep.

    The temperature softens the teacher *within* its top-k only. Over a 6,900-class charset
    a softened dense teacher is mostly tail: at T = 2 every class at 1e-6 becomes 1e-3, and
    6,900 of them outweigh the class the teacher actually reads (measured on PP-OCRv4-mobile:
    84 % of the softened mass lies outside its top 16). The student's distribution stays
    normalised over all classes, so the tail is still pushed down. Masked by ``lengths``,
    normalised by the number of valid timesteps, times T^2.
    """
    packed = student_logits if isinstance(student_logits, Packed) else None
    steps = teacher_indices.shape[1]
    if packed is not None:
        student_logits = packed.values
        teacher_indices, teacher_log_probs = _rows(teacher_indices, packed), _rows(teacher_log_probs, packed)
    t = float(temperature)
    log_s = (student_logits.float() / t).log_softmax(-1).gather(-1, teacher_indices)  # [N, T, K] or [M, K]
    log_p = (teacher_log_probs.float() / t).log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_s)).sum(-1)  # [N, T] or [M]
    return _masked_mean(kl, lengths, steps, packed) * (t * t)


class FeatureAdapter(nn.Module):
    """1x1 convolution from the student's feature channels to the teacher's."""

    def __init__(self, student_channels: int, teacher_channels: int):
        super().__init__()
        self.proj = nn.Conv2d(student_channels, teacher_channels, 1)

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        out = self.proj(features)
        if out.shape[-2:] != tuple(size):
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


def feature_mimic_loss(
    student_features: torch.Tensor, teacher_features: torch.Tensor, adapter: FeatureAdapter, lengths: torch.Tensor
) -> torch.Tensor:
    """Masked MSE between adapted student features and (fixed) teacher features, [N, C, 1, T]."""
    pred = adapter(student_features, teacher_features.shape[-2:])
    diff = (pred - teacher_features.detach()).pow(2).mean(dim=(1, 2))  # [N, T]
    mask = time_mask(lengths, diff.shape[1]).to(diff.dtype)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


class DistillationLoss(nn.Module):
    def __init__(
        self,
        alpha: float = 0.6,
        beta: float = 0.0,
        temperature: float = 2.0,
        student_channels: int | None = None,
        teacher_channels: int | None = None,
        top_k: int = 8,
    ):
        super().__init__()
        self.top_k = top_k  # 0: KL against the full (dense) teacher distribution
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1]")
        self.alpha, self.beta, self.temperature = alpha, beta, temperature
        self.adapter = None
        if beta > 0:
            if not (student_channels and teacher_channels):
                raise ValueError("feature mimicking (beta > 0) needs both feature channel counts")
            self.adapter = FeatureAdapter(student_channels, teacher_channels)

    def forward(
        self,
        student_logits,
        targets,
        input_lengths,
        target_lengths,
        teacher_logits=None,
        student_features=None,
        teacher_features=None,
        kd_lengths=None,
        teacher_top_k=None,
    ) -> dict[str, torch.Tensor]:
        """``kd_lengths`` (default ``input_lengths``) may be 0 for lines the teacher cannot read.
        The teacher comes dense (``teacher_logits``) or already truncated
        (``teacher_top_k`` = (indices, log-probabilities), see ``top_k_targets``)."""
        terms = {"ctc": ctc_loss(student_logits, targets, input_lengths, target_lengths)}
        total = terms["ctc"]
        if (teacher_logits is not None or teacher_top_k is not None) and self.alpha > 0:
            kd_lengths = input_lengths if kd_lengths is None else kd_lengths
            if teacher_top_k is None and self.top_k:
                teacher_top_k = top_k_targets(teacher_logits, self.top_k)
            if teacher_top_k is not None:
                terms["kd"] = sparse_kd_loss(student_logits, *teacher_top_k, kd_lengths, self.temperature)
            else:
                terms["kd"] = ctc_kd_loss(student_logits, teacher_logits, kd_lengths, self.temperature)
            total = self.alpha * terms["kd"] + (1 - self.alpha) * terms["ctc"]
        if self.adapter is not None and teacher_features is not None:
            terms["feat"] = feature_mimic_loss(student_features, teacher_features, self.adapter, input_lengths)
            total = total + self.beta * terms["feat"]
        terms["total"] = total
        return terms
