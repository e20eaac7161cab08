"""The CRNN recogniser and its factories.

``CRNN(backbone, num_classes)``: backbone -> [N, C, 1, T] features
(``forward_features``, the tap for feature mimicking) -> optional BiLSTM ->
linear classifier -> [N, T, num_classes] logits (``forward_head``).
Training calls ``forward_head_packed``: the classifier then runs on the valid
timesteps only (about half of a padded batch of synthetic lines).
"""

from __future__ import annotations

import torch
from torch import nn

from ..losses import Packed, time_mask
from .backbones import ConvNeXtBackbone, MobileNetV3Backbone, ResNetBackbone, ShuffleNetV2Backbone

INPUT_HEIGHT = 32
STRIDE = 4


class CRNN(nn.Module):
    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        rnn_hidden: int = 0,
        rnn_layers: int = 1,
        neck: int = 0,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        width = backbone.out_channels
        # optional 1x1 bottleneck before the sequence model
        self.neck = nn.Linear(width, neck) if neck else None
        width = neck or width
        self.rnn = None
        if rnn_hidden:
            self.rnn = nn.LSTM(width, rnn_hidden, num_layers=rnn_layers, bidirectional=True, batch_first=True)
            width = 2 * rnn_hidden
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(width, num_classes)
        self.feature_channels = backbone.out_channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def _sequence(self, features: torch.Tensor) -> torch.Tensor:
        seq = features.squeeze(2).permute(0, 2, 1)  # [N, T, C]
        if self.neck is not None:
            seq = torch.relu(self.neck(seq))
        if self.rnn is not None:
            seq, _ = self.rnn(seq)
        return self.dropout(seq)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.classifier(self._sequence(features))

    def forward_head_packed(self, features: torch.Tensor, lengths: torch.Tensor) -> Packed:
        """The classifier on the first ``lengths[n]`` timesteps of each line only. The rows
        equal ``forward_head``'s there; the padding's rows are never computed."""
        seq = self._sequence(features)
        mask = time_mask(lengths.to(seq.device), seq.shape[1])
        return Packed(self.classifier(seq[mask]), mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def teacher(num_classes: int) -> CRNN:
    """ResNet34-style backbone + 2-layer BiLSTM + CTC (about 8.5 M parameters)."""
    return CRNN(
        ResNetBackbone(widths=(32, 64, 128, 256), depths=(3, 4, 6, 3)), num_classes, rnn_hidden=160, rnn_layers=2
    )


def student(num_classes: int) -> CRNN:
    """ShuffleNetV2-style backbone + small BiLSTM + CTC (at most 2.3 M parameters)."""
    return CRNN(
        ShuffleNetV2Backbone(widths=(64, 128, 256), depths=(3, 7, 3), out_channels=256),
        num_classes,
        rnn_hidden=96,
        rnn_layers=1,
    )


def mobilenetv3_ctc(num_classes: int) -> CRNN:
    """MobileNetV3-style backbone + CTC, no recurrent layer (about 1.8 M parameters)."""
    return CRNN(MobileNetV3Backbone(out_channels=256), num_classes, neck=144)


def convnext_ctc(num_classes: int) -> CRNN:
    """ConvNeXt-Tiny-style backbone + CTC, no recurrent layer (about 2.1 M parameters)."""
    return CRNN(ConvNeXtBackbone(widths=(32, 64, 128, 192), depths=(1, 1, 3, 1)), num_classes)


ARCHITECTURES = {
    "teacher": teacher,
    "student": student,
    "mobilenetv3_ctc": mobilenetv3_ctc,
    "convnext_ctc": convnext_ctc,
}


def build(arch: str, num_classes: int) -> CRNN:
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(f"unknown architecture {arch!r}; choose from {sorted(ARCHITECTURES)}") from None
    return factory(num_classes)
