"""Backbones for text-line recognition.

Every backbone maps a ``[N, 1, 32, W]`` grayscale line to a ``[N, C, 1, W/4]``
feature map (height collapsed, horizontal stride 4) and exposes ``out_channels``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin, cout, k=3, stride=1, groups=1, act=nn.ReLU):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act is not None:
        layers.append(act(inplace=True) if act in (nn.ReLU, nn.Hardswish) else act())
    return nn.Sequential(*layers)


class CollapseHeight(nn.Module):
    """Average the remaining rows into one: [N, C, H, T] -> [N, C, 1, T]."""

    def forward(self, x):
        return x.mean(dim=2, keepdim=True)


# --------------------------------------------------------------------------- ResNet


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=(1, 1)):
        super().__init__()
        self.conv1 = conv_bn(cin, cout, 3, stride)
        self.conv2 = conv_bn(cout, cout, 3, 1, act=None)
        self.down = None
        if stride != (1, 1) or cin != cout:
            self.down = nn.Sequential(
                nn.AvgPool2d(stride, stride) if stride != (1, 1) else nn.Identity(),
                nn.Conv2d(cin, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )

    def forward(self, x):
        identity = x if self.down is None else self.down(x)
        return F.relu(self.conv2(self.conv1(x)) + identity)


class ResNetBackbone(nn.Module):
    """ResNet34 layout (3, 4, 6, 3 basic blocks) with CRNN strides."""

    def __init__(self, widths=(32, 64, 128, 256), depths=(3, 4, 6, 3), out_channels=None):
        super().__init__()
        strides = ((2, 2), (2, 1), (2, 1), (2, 1))
        self.stem = conv_bn(1, widths[0], 3, 2)  # 16 x W/2
        stages, cin = [], widths[0]
        for w, d, s in zip(widths, depths, strides):
            blocks = [BasicBlock(cin, w, s)] + [BasicBlock(w, w) for _ in range(d - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)  # 1 x W/4
        self.collapse = CollapseHeight()
        self.out_channels = cin

    def forward(self, x):
        return self.collapse(self.stages(self.stem(x)))


# --------------------------------------------------------------------------- ShuffleNetV2


def channel_shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride=(1, 1)):
        super().__init__()
        self.stride = stride
        branch = cout // 2
        if stride != (1, 1):
            self.left = nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin, act=None), conv_bn(cin, branch, 1))
            rin = cin
        else:
            self.left = None
            rin = branch
        self.right = nn.Sequential(
            conv_bn(rin, branch, 1),
            conv_bn(branch, branch, 3, stride, groups=branch, act=None),
            conv_bn(branch, branch, 1),
        )

    def forward(self, x):
        if self.left is None:
            a, b = x.chunk(2, dim=1)
            out = torch.cat((a, self.right(b)), dim=1)
        else:
            out = torch.cat((self.left(x), self.right(x)), dim=1)
        return channel_shuffle(out)


class ShuffleNetV2Backbone(nn.Module):
    def __init__(self, widths=(64, 128, 256), depths=(3, 7, 3), stem=24, out_channels=256):
        super().__init__()
        strides = ((2, 2), (2, 1), (2, 1))
        self.stem = conv_bn(1, stem, 3, 2)  # 16 x W/2
        stages, cin = [], stem
        for w, d, s in zip(widths, depths, strides):
            units = [ShuffleUnit(cin, w, s)] + [ShuffleUnit(w, w) for _ in range(d - 1)]
            stages.append(nn.Sequential(*units))
            cin = w
        self.stages = nn.Sequential(*stages)  # 2 x W/4
        self.head = conv_bn(cin, out_channels, 1)
        self.collapse = CollapseHeight()
        self.out_channels = out_channels

    def forward(self, x):
        return self.collapse(self.head(self.stages(self.stem(x))))


# --------------------------------------------------------------------------- MobileNetV3


class SqueezeExcite(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(8, c // r), 1)
        self.fc2 = nn.Conv2d(max(8, c // r), c, 1)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    def __init__(self, cin, exp, cout, k, stride, se, act):
        super().__init__()
        self.use_res = stride == (1, 1) and cin == cout
        layers = []
        if exp != cin:
            layers.append(conv_bn(cin, exp, 1, act=act))
        layers.append(conv_bn(exp, exp, k, stride, groups=exp, act=act))
        if se:
            layers.append(SqueezeExcite(exp))
        layers.append(conv_bn(exp, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        y = self.block(x)
        return x + y if self.use_res else y


class MobileNetV3Backbone(nn.Module):
    """MobileNetV3-Small-like inverted residuals with CRNN strides."""

    CONFIG = (  # k, exp, out, se, act, stride
        (3, 16, 16, True, nn.ReLU, (2, 2)),
        (3, 72, 24, False, nn.ReLU, (1, 1)),
        (3, 88, 24, False, nn.ReLU, (1, 1)),
        (5, 96, 40, True, nn.Hardswish, (2, 1)),
        (5, 240, 40, True, nn.Hardswish, (1, 1)),
        (5, 240, 40, True, nn.Hardswish, (1, 1)),
        (5, 120, 48, True, nn.Hardswish, (1, 1)),
        (5, 144, 48, True, nn.Hardswish, (1, 1)),
        (5, 288, 96, True, nn.Hardswish, (2, 1)),
        (5, 576, 96, True, nn.Hardswish, (1, 1)),
        (5, 576, 96, True, nn.Hardswish, (1, 1)),
    )

    def __init__(self, out_channels=288):
        super().__init__()
        self.stem = conv_bn(1, 16, 3, 2, act=nn.Hardswish)  # 16 x W/2
        blocks, cin = [], 16
        for k, exp, cout, se, act, stride in self.CONFIG:
            blocks.append(InvertedResidual(cin, exp, cout, k, stride, se, act))
            cin = cout
        self.blocks = nn.Sequential(*blocks)  # 2 x W/4
        self.head = conv_bn(cin, out_channels, 1, act=nn.Hardswish)
        self.collapse = CollapseHeight()
        self.out_channels = out_channels

    def forward(self, x):
        return self.collapse(self.head(self.blocks(self.stem(x))))


# --------------------------------------------------------------------------- ConvNeXt


class LayerNorm2d(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    def __init__(self, c, k=7, expansion=4):
        super().__init__()
        self.dw = nn.Conv2d(c, c, k, padding=k // 2, groups=c)
        self.norm = LayerNorm2d(c, eps=1e-6)
        self.pw1 = nn.Conv2d(c, expansion * c, 1)
        self.pw2 = nn.Conv2d(expansion * c, c, 1)
        self.gamma = nn.Parameter(torch.full((c, 1, 1), 1e-2))

    def forward(self, x):
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class ConvNeXtBackbone(nn.Module):
    """ConvNeXt-Tiny layout (depth ratio 1:1:3:1) scaled down, with CRNN strides."""

    def __init__(self, widths=(32, 64, 128, 192), depths=(1, 1, 3, 1)):
        super().__init__()
        strides = ((1, 1), (2, 2), (2, 1), (2, 1))
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 2, 2), LayerNorm2d(widths[0], eps=1e-6))  # 16 x W/2
        stages, cin = [], widths[0]
        for w, d, s in zip(widths, depths, strides):
            down = (
                nn.Identity()
                if s == (1, 1) and cin == w
                else nn.Sequential(LayerNorm2d(cin, eps=1e-6), nn.Conv2d(cin, w, s, s))
            )
            stages.append(nn.Sequential(down, *[ConvNeXtBlock(w) for _ in range(d)]))
            cin = w
        self.stages = nn.Sequential(*stages)  # 2 x W/4
        self.norm = LayerNorm2d(cin, eps=1e-6)
        self.collapse = CollapseHeight()
        self.out_channels = cin

    def forward(self, x):
        return self.collapse(self.norm(self.stages(self.stem(x))))
