"""The layering: the engine imports no framework; the web process reads cache keys without it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "workers" / "engine"
FORBIDDEN = ("django", "celery", "kombu", "redis", "ocr_api", "ocrsite", "frontend", "distill", "torch", "workers.tasks",
             "workers.runtime", "workers.presence", "workers.cache")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level >= 2:
            names.add("workers." + (node.module or ""))  # from ..x: out of the engine
    return names


def test_the_engine_imports_no_framework_and_nothing_around_it():
    offences = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in ENGINE.glob("*.py")
        for name in imported_modules(path)
        if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)
    }
    assert not offences, sorted(offences)


def test_importing_the_whole_engine_loads_no_framework():
    modules = sorted(p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import workers.engine.{m}\n" for m in modules)
        + "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'kombu', 'redis', 'ocr_api', 'torch')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_web_process_reads_cache_keys_without_onnx_runtime_or_opencv():
    code = (
        "import sys\n"
        "from workers.engine.cachekey import cache_key, preprocessing_signature\n"
        "print(','.join(m for m in ('onnxruntime', 'cv2') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
