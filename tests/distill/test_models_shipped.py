"""The weight files match the sha256 sums docs/models.md records for them."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| `(models/[^`]+)` \|.*\| `([0-9a-f]{64})`( \(built\))? \|$")


def recorded() -> dict[str, tuple[str, bool]]:
    rows = {}
    for line in (ROOT / "docs" / "models.md").read_text(encoding="utf-8").splitlines():
        m = ROW.match(line)
        if m:
            rows[m.group(1)] = (m.group(2), bool(m.group(3)))
    return rows


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def test_every_committed_weight_file_is_recorded_with_its_sum():
    rows = recorded()
    committed = {str(p.relative_to(ROOT)) for p in (ROOT / "models").glob("*") if p.suffix in (".onnx", ".pt")}
    committed |= {str(p.relative_to(ROOT)) for p in (ROOT / "models" / "lm").glob("*.arpa.gz")}
    assert committed and committed <= set(rows), f"not in docs/models.md: {committed - set(rows)}"
    for rel in committed:
        assert sha256(ROOT / rel) == rows[rel][0], rel


def test_the_built_references_are_what_make_models_builds():
    """`make models` rebuilds the references byte for byte from their pinned wheels; another sum
    means the wheel or the packaging changed, and docs/models.md must say what the new file is."""
    built = {rel: digest for rel, (digest, is_built) in recorded().items() if is_built}
    assert "models/reference/ppocrv6_tiny_rec.onnx" in built
    for rel, digest in built.items():
        assert sha256(ROOT / rel) == digest, rel
