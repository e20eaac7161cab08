import pytest
import torch

from distill.models import ARCHITECTURES, build

BOUNDS = {  # millions of parameters with the full charset
    "teacher": (7.5, 9.5),
    "student": (1.0, 2.3),
    "mobilenetv3_ctc": (1.5, 2.1),
    "convnext_ctc": (1.8, 2.4),
}


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
@pytest.mark.parametrize("width", [32, 100, 256])  # inputs are padded to a multiple of 4
def test_every_architecture_maps_width_to_quarter_time_steps(arch, width, charset):
    model = build(arch, len(charset)).eval()
    x = torch.randn(2, 1, 32, width)
    with torch.no_grad():
        feats = model.forward_features(x)
        out = model.forward_head(feats)
    steps = width // 4
    assert feats.shape == (2, model.feature_channels, 1, steps)
    assert out.shape == (2, steps, len(charset))
    # model(x) runs with autograd on: other kernels may be picked than under no_grad, so the
    # outputs agree to float32 precision, not bit for bit (3e-8 apart on some CPUs)
    assert torch.allclose(out, model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_parameter_counts_match_the_design(arch, charset):
    params = sum(p.numel() for p in build(arch, len(charset)).parameters()) / 1e6
    low, high = BOUNDS[arch]
    assert low <= params <= high


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError):
        build("resnet9000", 10)
