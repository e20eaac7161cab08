"""docker/Dockerfile.web copies every module its processes (web, OCR worker, Flower, manage.py) import,
and nothing that needs torch or holds PyTorch weights.

No container engine runs on the machines the suite runs on, so this reads the Dockerfile's final
stage, lays out the files it copies in a temporary folder, and (1) follows every project import in
them, function-level ones included, (2) starts Django from that folder alone with torch blocked and
imports everything the processes load.
"""

from __future__ import annotations

import ast
import fnmatch
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.imports import imported_names

DOCKERFILE = ROOT / "docker" / "Dockerfile.web"
LOCAL_PACKAGES = {
    "engine",
    "ocrsite",
    "ocr_api",
    "workers",
    "frontend",
    "distill",
    "tests",
    "bench",
    "scripts",
    "manage",
}


def instructions(dockerfile: Path) -> list[list[str]]:
    """The Dockerfile's instructions as token lists, continuation lines joined, comments dropped."""
    lines, current = [], ""
    for raw in dockerfile.read_text().splitlines():
        if raw.strip().startswith("#") and not current:
            continue
        current += raw.rstrip("\\").strip() + " "
        if not raw.rstrip().endswith("\\"):
            if current.strip():
                lines.append(shlex.split(current))
            current = ""
    return lines


def ignored(rel: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(rel, p.removeprefix("**/"))
        or fnmatch.fnmatch(rel, p)
        or any(fnmatch.fnmatch(part, p.removeprefix("**/")) for part in rel.split("/"))
        for p in patterns
    )


def image_files(dockerfile: Path = DOCKERFILE, stage: int = -1) -> dict[str, Path]:
    """Path inside /app -> file in the build context, for one stage's COPY lines (default: the final one)."""
    ignore_file = dockerfile.with_name(dockerfile.name + ".dockerignore")
    patterns = [ln.strip() for ln in ignore_file.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    instr = instructions(dockerfile)
    starts = [i for i, ins in enumerate(instr) if ins[0].upper() == "FROM"] + [len(instr)]
    stage = stage % (len(starts) - 1)
    files: dict[str, Path] = {}
    for ins in instr[starts[stage] : starts[stage + 1]]:
        if ins[0].upper() != "COPY" or any(a.startswith("--from") for a in ins[1:]):
            continue
        *sources, dest = [a for a in ins[1:] if not a.startswith("--")]
        for source in sources:
            src = ROOT / source
            assert src.exists(), f"{dockerfile.name} copies {source}, which is not in the build context"
            if src.is_file():
                target = dest + src.name if dest.endswith("/") else dest
                if not ignored(source, patterns):
                    files[target.removeprefix("./")] = src
                continue
            for path in src.rglob("*"):
                rel = path.relative_to(ROOT).as_posix()
                if path.is_file() and not ignored(rel, patterns):
                    files[(Path(dest) / path.relative_to(src)).as_posix()] = path
    return files


def module_path(name: str) -> list[str]:
    parts = name.split(".")
    return ["/".join(parts) + ".py", "/".join(parts) + "/__init__.py"]


def project_imports(rel: str, source: str) -> set[str]:
    """Every project module this file imports, at any depth of the code (function bodies too)."""
    return {m for m in imported_names(rel, source) if m.split(".")[0] in LOCAL_PACKAGES}


def top_level_imports(source: str) -> set[str]:
    """Modules imported when the file is imported: statements outside function bodies."""
    found = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level:
                found.add(node.module or "")
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ClassDef)):
                visit(getattr(node, "body", []) + getattr(node, "orelse", []) + getattr(node, "finalbody", []))

    visit(ast.parse(source).body)
    return found


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return image_files()


def test_every_project_import_of_the_image_is_copied_into_it(files):
    missing = set()
    for rel, src in files.items():
        if not rel.endswith(".py"):
            continue
        for module in project_imports(rel, src.read_text()):
            candidates = module_path(module)
            in_repo = [c for c in candidates if (ROOT / c).exists()]
            if in_repo and not any(c in files for c in in_repo):
                missing.add(f"{rel} imports {module} ({in_repo[0]} is not copied)")
    assert not missing, "\n".join(sorted(missing))


def test_no_module_of_the_image_imports_torch_when_loaded(files):
    offenders = [
        rel
        for rel, src in files.items()
        if rel.endswith(".py") and any(m.split(".")[0] == "torch" for m in top_level_imports(src.read_text()))
    ]
    assert not offenders


def test_the_image_holds_serving_models_only(files):
    models = sorted(rel for rel in files if rel.startswith("models/"))
    # the references come from the build stage; the decoder's language model is a serving file
    assert models == ["models/lm/zh_char5.arpa.gz", "models/ppocrv6_tiny_warm.onnx", "models/student.onnx"]
    assert not [rel for rel in files if rel.endswith((".pt", ".pth", ".ckpt"))]
    requirements = (ROOT / "requirements" / "base.txt").read_text().splitlines()
    assert not [ln for ln in requirements if ln.lower().startswith("torch")]


def test_the_image_holds_the_language_model_the_workers_load(files):
    from django.conf import settings

    rel = str(Path(settings.OCR_LM_MODEL).relative_to(settings.OCR_MODELS_DIR.parent))
    assert rel in files


def test_the_image_holds_every_model_the_registry_may_serve_by_default(files):
    from ocr_api.registry import DEFAULT_CANDIDATES

    text = DOCKERFILE.read_text()
    built = {
        arg.removeprefix("/out/")
        for ins in instructions(DOCKERFILE)
        if ins[0].upper() == "RUN"
        for flag, arg in zip(ins, ins[1:])
        if flag == "--out"
    }
    assert "COPY --from=reference /out/reference models/reference" in text
    missing = [c for c in DEFAULT_CANDIDATES if f"models/{c}" not in files and c not in built]
    assert not missing


def test_the_reference_build_stage_copies_what_import_reference_imports():
    names = [ins[-1] for ins in instructions(DOCKERFILE) if ins[0].upper() == "FROM"]
    copied = set(image_files(DOCKERFILE, stage=names.index("reference")))
    todo, seen = ["distill/cli.py", "distill/__main__.py"], set()
    while todo:
        rel = todo.pop()
        if rel in seen:
            continue
        seen.add(rel)
        for module in project_imports(rel, (ROOT / rel).read_text()):
            todo += [c for c in module_path(module) if (ROOT / c).exists() and _reached_by_import_reference(c)]
    assert seen <= copied, sorted(seen - copied)


def _reached_by_import_reference(rel: str) -> bool:
    # cli.py imports each command's module inside that command; import-reference needs export.py only
    # (and what it imports). The other commands' modules need torch and are not in this stage.
    return rel.startswith("workers/") or rel in {"distill/__init__.py", "distill/export.py", "engine/charset.py"}


LOADER = r"""
import importlib, os, sys
sys.modules["torch"] = None  # the image has no torch: importing it must fail here too
import django
django.setup()
here = os.getcwd()
import ocrsite
assert ocrsite.__file__.startswith(here), ocrsite.__file__
from django.urls import get_resolver
get_resolver().url_patterns  # every view the web process serves
from ocrsite.celery import app
app.loader.import_default_modules()  # what a Celery worker imports at start: the tasks modules
import ocrsite.wsgi, ocr_api.recognition
for path in sorted(sys.argv[1:]):
    if path.endswith(".py") and "/migrations/" not in path and path != "manage.py":
        module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        importlib.import_module(module)
print("loaded", len(sys.argv) - 1)
"""


def test_django_starts_from_the_image_files_alone_without_torch(files, tmp_path):
    app = tmp_path / "app"
    for rel, src in files.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, app / rel)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHON"))}
    env.update(
        DJANGO_SETTINGS_MODULE="ocrsite.settings.production",
        DJANGO_SECRET_KEY="x" * 50,
        OCR_VAR_DIR=str(tmp_path / "var"),
        OCR_MODELS_DIR=str(app / "models"),
    )
    py_files = [rel for rel in files if rel.endswith(".py")]
    result = subprocess.run(
        [sys.executable, "-c", LOADER, *py_files], cwd=app, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-4000:]
    check = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=app, env=env, capture_output=True, text=True, timeout=300
    )
    assert check.returncode == 0, check.stderr[-4000:]


def test_the_ocr_worker_runs_under_the_launcher_with_jemalloc_in_the_image(files):
    """Compose starts the OCR worker through workers.launcher (recycling), which preloads jemalloc
    when OCR_WORKER_ALLOCATOR=jemalloc: the image must hold both."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())
    command = compose["services"]["ocr-worker"]["command"]
    assert command[:3] == ["python", "-m", "workers.launcher"] and command[3:6] == ["celery", "-A", "ocrsite"]
    assert "workers/launcher.py" in files
    base_stage_runs = []
    for tokens in instructions(DOCKERFILE):
        if tokens[0] == "FROM" and base_stage_runs:
            break
        if tokens[0] == "RUN":
            base_stage_runs.append(tokens)
    assert any("apt-get" in t and "libjemalloc2" in t for t in base_stage_runs)
    from workers.launcher import JEMALLOC

    assert "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2" in JEMALLOC  # where Debian's package puts it


@pytest.mark.parametrize("dockerfile", ["Dockerfile.web", "Dockerfile.training"])
def test_celery_finds_our_packages_and_gunicorn_has_a_home(dockerfile):
    """Found by running the images (docs/reliability.md): the `celery` command puts its own folder
    first on the path, so the settings' imports failed in every worker container without
    PYTHONPATH=/app; gunicorn's control server needs the user's home."""
    tokens = [t for line in instructions(ROOT / "docker" / dockerfile) for t in line]
    assert "PYTHONPATH=/app" in tokens
    useradd = next(line for line in instructions(ROOT / "docker" / dockerfile) if "useradd" in line)
    assert "--create-home" in useradd
