"""Frozen teachers for distillation.

A teacher maps a student batch ``[N, 1, 32, W]`` (normalised grayscale) to
``(logits, features)`` aligned with the student: logits ``[N, W/4, C]`` over our
charset, features ``[N, C', 1, W/4]`` or None.

* ``CrnnTeacher`` wraps one of our CRNN checkpoints.
* ``OnnxCtcTeacher`` wraps any ONNX CTC recogniser following the model package
  contract (e.g. the packaged PP-OCRv4-mobile recogniser): the input is resized
  to its height and channels, its classes are mapped onto our charset
  explicitly (after NFKC; classes that map to the same character add up, ours
  that it lacks get a tiny floor), and its time axis is resized linearly to the
  student's ``W/4`` steps before renormalising.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.charset import Charset, normalize
from engine.inference import Recognizer

from .data import NORM_MEAN, NORM_STD


class CrnnTeacher:
    per_line = False

    def kd_lengths(self, batch) -> torch.Tensor:
        return batch["input_lengths"]

    def __init__(self, model: torch.nn.Module):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.feature_channels = model.feature_channels

    def to(self, device) -> CrnnTeacher:
        self.model.to(device)
        return self

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, input_lengths: torch.Tensor | None = None):
        features = self.model.forward_features(images)
        return self.model.forward_head(features), features


def class_mapping(teacher_classes, charset: Charset, teacher_blank: int) -> tuple[np.ndarray, np.ndarray]:
    """(source indices, target indices): teacher class -> our class, explicit and NFKC-aware."""
    index = charset.index
    src, dst = [teacher_blank], [charset.blank_index]
    for i, c in enumerate(teacher_classes):
        if i == teacher_blank:
            continue
        n = normalize(c)
        if len(n) == 1 and n in index:
            src.append(i)
            dst.append(index[n])
    return np.asarray(src), np.asarray(dst)


class OnnxCtcTeacher:
    feature_channels = None
    per_line = True

    def __init__(self, path: str, charset: Charset, threads: int = 1, floor: float = 1e-6):
        self.path, self.threads = str(path), threads
        self.rec = Recognizer(path, threads=threads)
        spec = self.rec.spec
        self.spec = spec
        src, dst = class_mapping(spec.classes, charset, spec.blank_index)
        self.src = torch.from_numpy(src)
        self.dst = torch.from_numpy(dst)
        self.num_classes = len(charset)
        self.floor = floor
        self.coverage = len(set(dst.tolist())) / len(charset)
        self.known = torch.zeros(len(charset), dtype=torch.bool)
        self.known[self.dst] = True

    def __getstate__(self):
        """Picklable (the session is rebuilt on the other side), so the teacher can run inside
        the training data workers, on other cores than the student's step."""
        state = dict(self.__dict__)
        state.pop("rec", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.rec = Recognizer(self.path, threads=self.threads)

    def kd_lengths(self, batch) -> torch.Tensor:
        """Input lengths, zeroed for lines holding a character the teacher has no class for."""
        ok = self.known[batch["targets"].cpu()]
        per_line = torch.split(ok, batch["target_lengths"].tolist())
        mask = torch.tensor([bool(p.all()) for p in per_line], device=batch["input_lengths"].device)
        return batch["input_lengths"] * mask

    def _teacher_input(self, images: torch.Tensor) -> np.ndarray:
        spec = self.spec
        pixels = images * NORM_STD + NORM_MEAN  # back to 0..1
        n, _, h, w = pixels.shape
        height = spec.input_height
        width = max(spec.min_width, int(round(w * height / h)))
        width = -(-width // spec.width_multiple) * spec.width_multiple
        x = F.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False)
        x = x.expand(n, spec.input_channels, height, width)
        mean = torch.tensor(spec.norm_mean).view(1, -1, 1, 1)
        std = torch.tensor(spec.norm_std).view(1, -1, 1, 1)
        return ((x - mean) / std).contiguous().numpy().astype(np.float32)

    def _distribution(self, image: torch.Tensor, steps: int) -> torch.Tensor:
        """Our-charset probabilities [steps, C] for one unpadded line [1, 1, 32, w]."""
        out = torch.from_numpy(self.rec.outputs(self._teacher_input(image))).float()[0]
        kind = self.spec.output_kind
        probs = out if kind == "probs" else (out.exp() if kind == "log_probs" else out.softmax(-1))
        mapped = torch.zeros(probs.shape[0], self.num_classes)
        mapped.index_add_(1, self.dst, probs.index_select(1, self.src))
        mapped = F.interpolate(mapped.T[None], size=steps, mode="linear", align_corners=False)[0].T
        mapped = mapped.clamp_min(0) + self.floor
        return mapped / mapped.sum(-1, keepdim=True)

    def _lines(self, images: torch.Tensor, input_lengths: torch.Tensor):
        """(line index, length, our-charset probabilities [length, C]) for each line, run alone
        at its own width (``length * 4``), so batch padding costs the teacher nothing."""
        images = images.cpu()  # ONNX Runtime runs on the CPU here
        for k in range(images.shape[0]):
            t = int(input_lengths[k])
            yield k, t, self._distribution(images[k : k + 1, :, :, : 4 * t], t)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, input_lengths: torch.Tensor | None = None):
        """Teacher log-probabilities [N, W/4, C]; steps beyond a line's length are filled with
        a certain blank (they are masked anyway)."""
        n, _, _, width = images.shape
        steps = width // 4
        if input_lengths is None:
            input_lengths = torch.full((n,), steps)
        out = torch.full((n, steps, self.num_classes), self.floor)
        out[:, :, 0] = 1.0
        for k, t, dist in self._lines(images, input_lengths):
            out[k, :t] = dist
        return out.log().to(images.device), None

    @torch.no_grad()
    def batch_targets(self, images: torch.Tensor, input_lengths: torch.Tensor, top_k: int = 0) -> dict:
        """What the data workers add to a batch: the ``top_k`` classes per timestep
        (``teacher_top_k_idx``/``teacher_top_k_logp``, [N, W/4, k]), or with ``top_k`` 0 the dense
        ``teacher_logits``. Padded steps hold a certain blank."""
        if not top_k:
            return {"teacher_logits": self(images, input_lengths)[0]}
        n, _, _, width = images.shape
        steps = width // 4
        idx = torch.zeros((n, steps, top_k), dtype=torch.long)
        idx[:, :, 1:] = torch.arange(1, top_k)
        logp = torch.full((n, steps, top_k), -30.0)
        logp[:, :, 0] = 0.0
        for k, t, dist in self._lines(images, input_lengths):
            values, indices = dist.topk(top_k, dim=-1)
            idx[k, :t], logp[k, :t] = indices, values.log()
        return {"teacher_top_k_idx": idx, "teacher_top_k_logp": logp}
