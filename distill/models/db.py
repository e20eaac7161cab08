"""A small DB-style text detector: ShuffleNetV2 units down to stride 32, a light FPN, and a
head that gives one text probability map at the input's resolution (the ``prob_map`` output
kind of ``engine.detect``, as PP-OCR's DB detectors give it). The head predicts each
stride-4 cell's 4 x 4 pixels as 16 channels and lays them out (pixel shuffle): the same map size
as a bilinear upsampling for less time (58 against 70 ms a 1344 x 928 page, one ONNX Runtime
thread; a sigmoid over every pixel cost more than all the stride-4 layers together).

``DBNet(backbone, channels, head)``: ``forward_features`` -> the fused stride-4 feature map (the
tap a feature-mimic loss would use), ``forward_head`` -> text logits of each cell's 16 pixels at
stride 4, ``forward`` -> the probability map, [N, 1, H, W], which is what training's losses see
and all the exported graph returns. H and W must be multiples of 32 (``DetSpec.size_multiple``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import ShuffleUnit, conv_bn


class DBBackbone(nn.Module):
    """Stem (3x3 conv at stride 2, max pool) to stride 4, then ShuffleNetV2 stages at strides
    4, 8, 16 and 32 (each stage after the first opens with a stride-2 unit)."""

    def __init__(self, widths=(24, 64, 128, 256), depths=(1, 3, 5, 2), stem: int = 16):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, stem, 3, 2), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], stem
        for i, (w, d) in enumerate(zip(widths, depths)):
            first = ShuffleUnit(cin, w, (2, 2)) if i else conv_bn(cin, w, 1)
            stages.append(nn.Sequential(first, *[ShuffleUnit(w, w) for _ in range(d - (1 if i else 0))]))
            cin = w
        self.stages = nn.ModuleList(stages)
        self.out_channels = tuple(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features  # strides 4, 8, 16, 32


class LightFPN(nn.Module):
    """DB's FPN made cheap: 1x1 laterals to ``channels``, top-down sums (nearest upsampling),
    a depthwise 3x3 + pointwise smoothing to ``channels // 4`` per level, all brought to stride 4
    and concatenated (``channels`` at stride 4)."""

    def __init__(self, in_channels, channels: int = 64):
        super().__init__()
        self.laterals = nn.ModuleList(conv_bn(c, channels, 1, act=None) for c in in_channels)
        self.smooth = nn.ModuleList(
            nn.Sequential(
                conv_bn(channels, channels, 3, groups=channels, act=None), conv_bn(channels, channels // 4, 1)
            )
            for _ in in_channels
        )
        self.out_channels = channels // 4 * len(in_channels)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        lat = [layer(f) for layer, f in zip(self.laterals, features)]
        for i in range(len(lat) - 2, -1, -1):
            lat[i] = lat[i] + F.interpolate(lat[i + 1], scale_factor=2.0, mode="nearest")
        outs = [self.smooth[i](p) for i, p in enumerate(lat)]
        outs = [outs[0]] + [
            F.interpolate(o, scale_factor=float(2**i), mode="nearest") for i, o in enumerate(outs[1:], 1)
        ]
        return torch.cat(outs, dim=1)


class DBNet(nn.Module):
    def __init__(self, backbone: nn.Module, channels: int = 64, head: int = 32, prior: float = 0.1):
        super().__init__()
        self.backbone = backbone
        self.neck = LightFPN(backbone.out_channels, channels)
        c = self.neck.out_channels
        self.stride = 4
        self.head = nn.Sequential(
            conv_bn(c, c, 3, groups=c, act=None), conv_bn(c, head, 1), nn.Conv2d(head, self.stride**2, 1)
        )
        # start from the share of text pixels on a page, not from one half
        nn.init.constant_(self.head[-1].bias, float(torch.logit(torch.tensor(prior))))
        self.feature_channels = c

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The probability map at the input's resolution."""
        return F.pixel_shuffle(torch.sigmoid(self.forward_head(self.forward_features(x))), self.stride)


def db_student() -> DBNet:
    """The platform's own detector: about 0.19 M parameters (the imported PP-OCRv6 tiny: 0.43 M)."""
    return DBNet(DBBackbone(widths=(24, 64, 128, 256), depths=(1, 3, 5, 2), stem=16), channels=64, head=32)


DETECTOR_ARCHITECTURES = {"db_student": db_student}


def build_detector(arch: str) -> DBNet:
    try:
        factory = DETECTOR_ARCHITECTURES[arch]
    except KeyError:
        raise ValueError(
            f"unknown detector architecture {arch!r}; choose from {sorted(DETECTOR_ARCHITECTURES)}"
        ) from None
    return factory()
