"""Line datasets: the ``labels.tsv`` reader/writer and the torch datasets."""

from __future__ import annotations

from pathlib import Path


def read_labels(data_dir: str | Path) -> list[tuple[str, str]]:
    """``relative/path.png<TAB>text`` lines of ``DIR/labels.tsv`` (UTF-8)."""
    path = Path(data_dir) / "labels.tsv"
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            if "\t" not in line:
                raise ValueError(f"{path}:{n}: expected 'path<TAB>text'")
            rel, text = line.split("\t", 1)
            items.append((rel, text))
    return items


def write_labels(data_dir: str | Path, items: list[tuple[str, str]]) -> Path:
    path = Path(data_dir) / "labels.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for rel, text in items:
            if "\t" in text or "\n" in text:
                raise ValueError(f"label of {rel} contains a tab or newline")
            f.write(f"{rel}\t{text}\n")
    return path
