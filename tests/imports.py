"""The modules a source file names in its import statements, for the tests that check what the
project imports (tests/test_layers.py, tests/ocrsite/test_docker_images.py)."""

from __future__ import annotations

import ast


def imported_names(rel: str, source: str) -> set[str]:
    """Every module the file at ``rel`` (a path relative to the repository root) names in an import
    statement, at any depth of the code (function bodies too), relative imports resolved to absolute
    names. ``from x import y`` gives ``x`` and ``x.y`` (y may be a module)."""
    package = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if not rel.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found
