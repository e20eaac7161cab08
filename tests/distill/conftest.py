import numpy as np
import pytest
import torch

from distill.charset import load_charset


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def charset():
    return load_charset()


@pytest.fixture(scope="session")
def line_dir(tmp_path_factory):
    """A tiny rendered line dataset (held-out fonts, clean)."""
    from distill.data import write_dataset

    out = tmp_path_factory.mktemp("lines")
    write_dataset(out, 6, split="dev", seed=3, strength=0.0, progress=False)
    return out


@pytest.fixture
def rng():
    return np.random.default_rng(0)
