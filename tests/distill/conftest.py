import importlib.util

import numpy as np
import pytest
import torch

from engine.charset import load_charset


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


@pytest.fixture(scope="session")
def sentences() -> tuple[str, ...]:
    """Invoice and contract phrases that synthetic test pages are filled with."""
    return (
        "增值税专用发票开具说明",
        "购买方名称上海明远科技有限公司",
        "纳税人识别号与开户行信息",
        "本合同自双方签字之日起生效",
        "货物或应税劳务名称及规格型号",
        "请在收到发票后十日内核对",
        "价税合计人民币壹万贰仟元整",
        "地址电话及开户银行账号",
    )


@pytest.fixture(scope="session")
def faces():
    """One training face (Noto Sans CJK SC Regular) for synthetic test pages."""
    from distill.fonts import faces_for

    return [f for f in faces_for("train") if f.name == "Noto Sans CJK SC" and f.style == "Regular"]


@pytest.fixture(scope="session")
def bench_script():
    """``bench_script("pages")``: the module ``bench.pages``."""
    return lambda name: importlib.import_module(f"bench.{name}")
