"""CRNN recognisers: one CRNN class, backbones injected by small factories."""

from .backbones import ConvNeXtBackbone, MobileNetV3Backbone, ResNetBackbone, ShuffleNetV2Backbone
from .crnn import ARCHITECTURES, CRNN, build, convnext_ctc, mobilenetv3_ctc, student, teacher

__all__ = [
    "ARCHITECTURES",
    "CRNN",
    "ConvNeXtBackbone",
    "MobileNetV3Backbone",
    "ResNetBackbone",
    "ShuffleNetV2Backbone",
    "build",
    "convnext_ctc",
    "mobilenetv3_ctc",
    "student",
    "teacher",
]
