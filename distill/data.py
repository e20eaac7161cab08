"""Line datasets: the ``labels.tsv`` reader/writer and the torch datasets."""

from __future__ import annotations

import hashlib
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


# --------------------------------------------------------------------------- samples and batches

NORM_MEAN = 0.5
NORM_STD = 0.5


# "v1": the mix the shipped student and the dev sets were made with; "wide": more text kinds
# (prose), both renderers, natively small sizes, any crop margin, photo-severity degradations.
MIXES = ("v1", "wide")


def curriculum_strength(
    progress: float, rng, clean_share: float = 0.25, max_strength: float = 1.0, ramp: bool = True
) -> float:
    """Augmentation strength for a sample drawn at ``progress`` (0..1) through training:
    a quarter of the lines stay clean, the cap on the rest grows from 0.3 to full by mid-run
    (``ramp``), or is full from the start (for a run that continues a trained model)."""
    if rng.random() < clean_share:
        return 0.0
    cap = (min(1.0, 0.3 + 1.4 * progress) if ramp else 1.0) * max_strength
    return float(rng.uniform(0.15, 1.0)) * cap


class SyntheticLines:
    """Map-style dataset of rendered lines; item ``i`` is a pure function of (seed, i),
    so a resumed or repeated run sees exactly the same data.

    ``strength`` None means the training curriculum (by i / length); a number fixes it.
    """

    def __init__(
        self,
        length: int,
        split: str = "train",
        seed: int = 0,
        strength: float | None = None,
        min_len: int = 2,
        max_len: int = 12,
        height: int = 32,
        max_strength: float = 1.0,
        ramp: bool = True,
        mix: str = "v1",
    ):
        if mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}")
        self.length, self.split, self.seed, self.strength = length, split, seed, strength
        self.min_len, self.max_len, self.height, self.max_strength = min_len, max_len, height, max_strength
        self.ramp = ramp
        self.mix = mix
        self._source = None
        self._faces = None
        self._pango = None

    def __len__(self) -> int:
        return self.length

    def _setup(self):
        if self._source is None:
            from engine.charset import load_charset

            from .fonts import faces_for
            from .text import TextSource

            weights = TextSource.WIDE_WEIGHTS if self.mix == "wide" else None
            self._source = TextSource(
                load_charset(), self.split, self.min_len, self.max_len, seed=self.seed, weights=weights
            )
            self._faces = faces_for(self.split)
            if self.mix == "wide":
                from .pangorender import PangoLine, use_only_fonts_in
                from .render import pango_font_dir

                use_only_fonts_in(pango_font_dir(self._faces + faces_for_latin()))
                self._pango = PangoLine()

    def sample(self, i: int):
        import numpy as np

        from .render import draw_text_and_face, render_line, render_line_wide

        self._setup()
        rng = np.random.default_rng([self.seed, i, 0 if self.split == "train" else 1])
        text, face = draw_text_and_face(self._source, self._faces, rng)
        if self.strength is None:
            strength = curriculum_strength(i / max(self.length, 1), rng, max_strength=self.max_strength, ramp=self.ramp)
        else:
            strength = self.strength
        if self.mix == "wide":
            return render_line_wide(text, face, rng, self.height, strength, self._pango), text, face.label
        return render_line(text, face, rng, self.height, strength), text, face.label

    def __getitem__(self, i: int):
        img, text, _ = self.sample(i)
        return img, text


def faces_for_latin():
    """The Latin faces the wide mix sets ASCII runs in (render.LATIN_FAMILIES), from the train pool."""
    from .fonts import faces_for
    from .render import LATIN_FAMILIES

    return tuple(f for f in faces_for("train") if f.name in LATIN_FAMILIES)


def held_back(rel: str) -> bool:
    """Whether a dataset's line is held back from training for its evaluation report: one line in
    ten, chosen by its path (stable when lines are added)."""
    return hashlib.sha1(rel.encode("utf-8")).digest()[0] % 10 == 0


class LabelledLines:
    """A ``labels.tsv`` folder as grayscale lines resized to ``height``; ``split`` "train" leaves
    out the held-back lines (``held_back``), "held_back" keeps only them, None keeps all."""

    def __init__(self, data_dir: str | Path, height: int = 32, limit: int | None = None, split: str | None = None):
        self.dir = Path(data_dir)
        items = read_labels(self.dir)
        if split is not None:
            items = [(rel, text) for rel, text in items if held_back(rel) == (split == "held_back")]
        self.items = items[:limit]
        self.height = height

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        import cv2

        from .render import resize_to_height

        rel, text = self.items[i]
        img = cv2.imread(str(self.dir / rel), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise ValueError(f"cannot read {self.dir / rel}")
        return resize_to_height(img, self.height), text


class MixedLines:
    """Synthetic lines with real labelled lines (an uploaded dataset, users' corrections) mixed in:
    every ``round(1 / share)``-th item comes from ``labelled``, cycling through it. Labelled lines
    with characters outside the charset are left out (and counted in ``dropped``)."""

    def __init__(self, synthetic, labelled: LabelledLines, charset, share: float = 0.3):
        if not 0 < share <= 1:
            raise ValueError("the share of labelled lines must lie in (0, 1]")
        keep = [i for i, (_, text) in enumerate(labelled.items) if text.strip() and charset.covers(text)]
        if not keep:
            raise ValueError(f"{labelled.dir}: no line of labels.tsv is covered by the charset")
        self.synthetic, self.labelled, self.keep = synthetic, labelled, keep
        self.dropped = len(labelled.items) - len(keep)
        self.every = max(1, round(1 / share))

    def __len__(self) -> int:
        return len(self.synthetic)

    def __getitem__(self, i: int):
        if i % self.every == 0:
            return self.labelled[self.keep[(i // self.every) % len(self.keep)]]
        return self.synthetic[i]


class Collate:
    """Pads a list of (uint8 image, text) to a batch for CTC training. With a ``teacher``
    (a picklable per-line teacher such as ``OnnxCtcTeacher``) the batch also carries the
    teacher's targets (``batch_targets``: its ``top_k`` classes per timestep, or dense with 0),
    computed where the batch is made: in a data worker, on another core than the student's step."""

    def __init__(self, charset, stride: int = 4, teacher=None, top_k: int = 0):
        self.charset, self.stride, self.teacher, self.top_k = charset, stride, teacher, top_k

    def __call__(self, batch):
        import numpy as np
        import torch

        width = max(img.shape[1] for img, _ in batch)
        width = -(-width // self.stride) * self.stride
        height = batch[0][0].shape[0]
        images = np.empty((len(batch), 1, height, width), np.float32)
        targets, target_lengths, input_lengths, texts = [], [], [], []
        for k, (img, text) in enumerate(batch):
            w = img.shape[1]
            images[k, 0] = np.pad(img, ((0, 0), (0, width - w)), mode="edge")
            ids = self.charset.encode(text)
            targets.extend(ids)
            target_lengths.append(len(ids))
            input_lengths.append(-(-w // self.stride))
            texts.append(text)
        images = (images / 255.0 - NORM_MEAN) / NORM_STD
        batch = {
            "images": torch.from_numpy(images),
            "targets": torch.tensor(targets, dtype=torch.long),
            "target_lengths": torch.tensor(target_lengths, dtype=torch.long),
            "input_lengths": torch.tensor(input_lengths, dtype=torch.long),
            "texts": texts,
        }
        if self.teacher is not None:
            batch.update(self.teacher.batch_targets(batch["images"], batch["input_lengths"], self.top_k))
        return batch


class BucketCollate:
    """Collates several batches' worth of lines at once (the loader's batch size is a multiple
    of ``batch_size``): sorts them by width and cuts them into batches of ``batch_size`` (each
    padded to its own widest line), so little of a batch is padding. Returns the list of
    batches, in an order that depends only on the lines."""

    def __init__(self, collate: Collate, batch_size: int):
        self.collate, self.batch_size = collate, batch_size

    def __call__(self, lines):
        import numpy as np

        order = sorted(range(len(lines)), key=lambda i: lines[i][0].shape[1])
        chunks = [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        # narrow-to-wide steps in a fixed cycle would be a pattern the optimiser sees; shuffle them
        rng = np.random.default_rng(sum(img.shape[1] for img, _ in lines))
        return [self.collate([lines[i] for i in chunks[k]]) for k in rng.permutation(len(chunks))]


def write_dataset(
    out_dir: str | Path,
    count: int,
    split: str = "dev",
    seed: int = 0,
    strength: float | None = 0.0,
    progress: bool = True,
) -> Path:
    """Render ``count`` lines to ``out_dir/images/*.png`` and write ``labels.tsv``
    (plus ``fonts.tsv`` naming the face of every line)."""
    import cv2
    from tqdm import tqdm

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    ds = SyntheticLines(count, split=split, seed=seed, strength=strength)
    items, fonts = [], []
    for i in tqdm(range(count), desc=f"generate {out_dir.name}", disable=not progress):
        img, text, face = ds.sample(i)
        rel = f"images/{i:06d}.png"
        cv2.imwrite(str(out_dir / rel), img)
        items.append((rel, text))
        fonts.append((rel, face))
    with open(out_dir / "fonts.tsv", "w", encoding="utf-8") as f:
        for rel, face in fonts:
            f.write(f"{rel}\t{face}\n")
    return write_labels(out_dir, items)
