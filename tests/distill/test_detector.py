"""Our own text detector: the network, its crops and targets, a few training steps that resume,
and the exported package the engine reads."""

import pytest
import torch

from distill.models.db import build_detector, db_student


# --------------------------------------------------------------------------- the network

@pytest.mark.parametrize("height,width", [(64, 96), (128, 128), (160, 320)])
def test_the_network_gives_a_probability_map_of_the_inputs_size(height, width):
    torch.manual_seed(0)
    model = db_student().eval()
    x = torch.randn(2, 3, height, width)
    with torch.no_grad():
        features = model.forward_features(x)
        prob = model(x)
    assert features.shape == (2, model.feature_channels, height // 4, width // 4)
    assert prob.shape == (2, 1, height, width)
    assert float(prob.min()) >= 0.0 and float(prob.max()) <= 1.0


def test_the_network_is_far_under_a_million_parameters():
    params = sum(p.numel() for p in db_student().parameters())
    assert 100_000 < params < 400_000


def test_an_unknown_detector_architecture_is_refused():
    with pytest.raises(ValueError):
        build_detector("dbnet9000")
