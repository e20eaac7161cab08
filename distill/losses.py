"""Training losses: CTC, CTC knowledge distillation and feature mimicking.

``DistillationLoss`` returns a dict of named terms so each one can be logged:
``total = alpha * kd + (1 - alpha) * ctc + beta * feat``.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


def time_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[N, T] boolean mask, True where t < length."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def ctc_loss(logits: torch.Tensor, targets: torch.Tensor, input_lengths: torch.Tensor,
             target_lengths: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """CTC on [N, T, C] logits; mean over the batch of per-line loss / label length."""
    log_probs = logits.float().log_softmax(-1).permute(1, 0, 2)  # [T, N, C]
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank,
                      reduction="mean", zero_infinity=True)


def ctc_kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, lengths: torch.Tensor,
                temperature: float = 2.0) -> torch.Tensor:
    """Per-timestep KL(teacher || student) at ``temperature``, masked by sequence
    length and normalised by the total number of valid timesteps (times T^2 so the
    gradient scale does not depend on the temperature).

    ``teacher_logits`` may be logits or log-probabilities; both give the same
    softmax.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student {tuple(student_logits.shape)} and teacher {tuple(teacher_logits.shape)} differ")
    t = float(temperature)
    log_s = (student_logits.float() / t).log_softmax(-1)
    log_p = (teacher_logits.float() / t).log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_s)).sum(-1)  # [N, T]
    mask = time_mask(lengths, kl.shape[1]).to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp_min(1.0) * (t * t)


def top_k_targets(teacher_logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(class indices, log-probabilities) of the teacher's ``k`` most likely classes per timestep."""
    log_p = teacher_logits.float().log_softmax(-1)
    values, indices = log_p.topk(min(k, log_p.shape[-1]), dim=-1)
    return indices, values


def sparse_kd_loss(student_logits: torch.Tensor, teacher_indices: torch.Tensor, teacher_log_probs: torch.Tensor,
                   lengths: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """KL(teacher || student) with the teacher truncated to its top-k classes per timestep.

    The temperature softens the teacher *within* its top-k only. Over a 6,900-class charset
    a softened dense teacher is mostly tail: at T = 2 every class at 1e-6 becomes 1e-3, and
    6,900 of them outweigh the class the teacher actually reads (measured on PP-OCRv4-mobile:
    84 % of the softened mass lies outside its top 16). The student's distribution stays
    normalised over all classes, so the tail is still pushed down. Masked by ``lengths``,
    normalised by the number of valid timesteps, times T^2.
    """
    t = float(temperature)
    log_s = (student_logits.float() / t).log_softmax(-1).gather(-1, teacher_indices)  # [N, T, K]
    log_p = (teacher_log_probs.float() / t).log_softmax(-1)
    kl = (log_p.exp() * (log_p - log_s)).sum(-1)  # [N, T]
    mask = time_mask(lengths, kl.shape[1]).to(kl.dtype)
    return (kl * mask).sum() / mask.sum().clamp_min(1.0) * (t * t)


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


def feature_mimic_loss(student_features: torch.Tensor, teacher_features: torch.Tensor, adapter: FeatureAdapter,
                       lengths: torch.Tensor) -> torch.Tensor:
    """Masked MSE between adapted student features and (fixed) teacher features, [N, C, 1, T]."""
    pred = adapter(student_features, teacher_features.shape[-2:])
    diff = (pred - teacher_features.detach()).pow(2).mean(dim=(1, 2))  # [N, T]
    mask = time_mask(lengths, diff.shape[1]).to(diff.dtype)
    return (diff * mask).sum() / mask.sum().clamp_min(1.0)


class DistillationLoss(nn.Module):
    def __init__(self, alpha: float = 0.6, beta: float = 0.0, temperature: float = 2.0,
                 student_channels: int | None = None, teacher_channels: int | None = None, top_k: int = 8):
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

    def forward(self, student_logits, targets, input_lengths, target_lengths, teacher_logits=None,
                student_features=None, teacher_features=None, kd_lengths=None,
                teacher_top_k=None) -> dict[str, torch.Tensor]:
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
