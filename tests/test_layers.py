"""The layers, in the code and in the running processes (docs/architecture.md):

    ocrsite                  settings, URL conf, WSGI, the Celery app
    ocr_api, frontend        the Django apps (with the Celery tasks that touch their models)
    workers                  the OCR worker's runtime: sessions, batcher, presence, shared config
    distill                  training, evaluation, packaging (torch)
    engine                   framework-free OCR: images, detection, recognition, decoding, charset

Every import counts, the ones inside functions too. No package imports one above it, and no two
files import each other, directly or round a loop. The web process never loads ONNX Runtime,
OpenCV, PyTorch or the Celery worker.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.imports import imported_names

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("engine", "workers", "distill", "ocr_api", "frontend", "ocrsite", "bench")
# What each of our top-level packages may import of ours (besides itself).
ALLOWED = {
    "engine": set(),
    "workers": {"engine"},
    "distill": {"engine"},
    "ocr_api": {"engine", "workers", "ocrsite"},  # ocrsite: the Celery app object only
    "frontend": {"ocr_api"},
    "ocrsite": {"engine", "workers", "ocr_api", "frontend"},
    "bench": {"engine", "workers", "distill", "ocr_api", "ocrsite"},
}
# Third-party modules the engine must not import: it is plain functions over arrays.
ENGINE_FORBIDDEN = ("django", "celery", "kombu", "redis", "rest_framework", "torch")
# The modules the web process must never load, and how its modules are found.
WEB_FORBIDDEN = ("onnxruntime", "cv2", "torch", "celery.worker")
WORKER_ONLY = {"ocr_api.recognition"}  # the OCR queue's tasks: loaded by workers, sent to by name


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` names in an import statement, at any depth, as absolute names."""
    return imported_names(path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8"))


def our_graph() -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (only names that are files of ours)."""
    files = {module_name(p): p for p in source_files()}
    graph = {}
    for name, path in files.items():
        graph[name] = {m for m in imports_of(path) if m in files and m != name}
    return graph


def test_no_package_imports_one_above_it():
    offences = []
    for name, deps in our_graph().items():
        top = name.split(".")[0]
        offences += [f"{name} -> {d}" for d in deps if d.split(".")[0] != top and d.split(".")[0] not in ALLOWED[top]]
    assert not offences, offences


def test_no_files_import_each_other_round_a_loop():
    graph = our_graph()
    # a package's __init__ and its submodules are one file each: only real import edges count
    cycles = strongly_connected(graph)
    assert not cycles, cycles


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The groups of two or more modules that reach each other (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_loop():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_the_engine_imports_no_framework():
    offences = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "engine").glob("*.py")
        for name in imports_of(path)
        if any(name == f or name.startswith(f + ".") for f in ENGINE_FORBIDDEN)
    }
    assert not offences, sorted(offences)


def test_importing_the_whole_engine_loads_no_framework():
    modules = sorted(p.stem for p in (ROOT / "engine").glob("*.py") if p.stem != "__init__")
    code = (
        "import sys\n"
        + "".join(f"import engine.{m}\n" for m in modules)
        + "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'celery', 'kombu', 'redis', 'ocr_api', 'torch')]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


WEB_PROCESS = """
import importlib, sys
import ocrsite.wsgi                     # what gunicorn loads: django.setup() and the WSGI handler
import ocrsite.gunicorn_conf            # and its hooks' module
from django.urls import get_resolver
get_resolver().url_patterns             # the URL conf: every view module
from django.contrib import admin
admin.autodiscover()
for name in sys.argv[1:]:               # and whatever a view imports inside a function
    importlib.import_module(name)
print(",".join(m for m in {forbidden!r} if m in sys.modules))
"""


def web_modules() -> list[str]:
    """Every module of ours the web's own files import anywhere (inside functions too), less the
    worker-only task modules."""
    graph = our_graph()
    web = [m for m in graph if m.split(".")[0] in ("ocrsite", "ocr_api", "frontend") and m not in WORKER_ONLY]
    needed = set(web)
    for m in web:
        needed |= graph[m]
    return sorted(needed - WORKER_ONLY)


def loaded_in_web_process(names: list[str]) -> set[str]:
    """The forbidden modules loaded by a process that starts the web as gunicorn does and imports
    ``names`` too."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "ocrsite.settings.local", "DJANGO_SECRET_KEY": "test-only"}
    env["PYTHONPATH"] = str(ROOT)
    code = WEB_PROCESS.format(forbidden=WEB_FORBIDDEN)
    out = subprocess.run(
        [sys.executable, "-c", code, *names], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    last = (out.stdout.strip().splitlines() or [""])[-1]
    return set(last.split(",")) - {""}


def test_the_web_process_loads_neither_onnx_runtime_nor_opencv_nor_torch_nor_the_celery_worker():
    names = web_modules()
    assert "ocr_api.views" in names and "workers.config" in names
    assert loaded_in_web_process(names) == set()


def test_the_web_check_sees_what_the_worker_loads():
    """The same check on a worker's task module finds the engine's heavy parts (it can fail)."""
    assert {"onnxruntime", "cv2"} <= loaded_in_web_process(["ocr_api.recognition"])
