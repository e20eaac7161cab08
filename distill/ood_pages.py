"""The frozen out-of-distribution page suite: layouts the training page generator never makes.

``python -m distill ood-pages`` (``make ood-pages``) writes ``data/ood_pages/``: A4 pages at 150 dpi
in five layouts, each once scanned and once photographed, and ``pages.jsonl`` with each page's
lines in reading order. The same command writes the same pages (every page has its own seed).

* **layouts** (none of them is ``distill.pages``'s paragraphs, two columns under a title or form
  rows): a two-column *article* with a centred title, paragraphs flowing down the left column and
  on into the right one, and a full-width footer; a ruled *table* under a caption (rows top to
  bottom, cells left to right); a *letter* with a right-aligned date, indented paragraphs, a
  closing and a right-aligned signature and date; a *form* of key-value rows, some rows holding
  two pairs; a *receipt*: a narrow slip with a centred header, items with right-aligned prices
  and a centred footer.
* **text layout by Pango** (line breaking, alignment, indents: not our code), in the
  out-of-distribution line suite's families (FandolSong, FandolHei, FandolKai, FandolFang,
  Ma Shan Zheng: ``distill.ood``) with its frozen texts (``distill/ood_texts.tsv``), which no
  training pool holds.
* **degradations by augraphy** (a third-party library): *scan*: ink bleed, paper texture, dirty
  drum or low-ink lines, a skew up to 1.5 degrees, JPEG; *photo*: a lighting gradient, noise and
  blur from augraphy, then the page photographed at an angle (a perspective warp, the sheet on a
  darker table) at a lower resolution and JPEG.

Page char accuracy (``bench/ood_pages.py``): the lines read, joined in reading order, against the
ground-truth lines joined in their order (NFKC, whitespace dropped, 1 - edits/chars); order-free
accuracy compares the two texts' characters sorted, so it counts what was read, not where.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

VERSION = "1"
SEED = 20261206
LAYOUTS = ("article", "table", "letter", "form", "receipt")
KINDS = ("scan", "photo")
PAGE_W, PAGE_H = 1240, 1754
MARGIN = 110


@dataclass
class Canvas:
    """A page being laid out: cairo surface, Pango, the face, and the lines drawn in reading order."""

    face: object
    rng: np.random.Generator
    width: int = PAGE_W
    height: int = PAGE_H
    lines: list[str] = field(default_factory=list)

    def __post_init__(self):
        import cairocffi
        import pangocairocffi
        import pangocffi

        self.cairo, self.pc, self.pango = cairocffi, pangocairocffi, pangocffi
        self.surface = cairocffi.ImageSurface(cairocffi.FORMAT_RGB24, self.width, self.height)
        self.ctx = cairocffi.Context(self.surface)
        self.ctx.set_source_rgb(1, 1, 1)
        self.ctx.paint()
        self.ctx.set_source_rgb(0.05, 0.05, 0.05)

    def layout(
        self,
        text: str,
        em: float,
        width: float | None = None,
        align: str = "left",
        bold: bool = False,
        indent: float = 0.0,
    ):
        pango = self.pango
        layout = self.pc.create_layout(self.ctx)
        desc = pango.FontDescription()
        desc.family = self.face.family
        desc.weight = pango.Weight.BOLD if (bold or self.face.style == "Bold") else pango.Weight.NORMAL
        desc.set_absolute_size(pango.units_from_double(em))
        layout.font_description = desc
        if width is not None:
            layout.width = pango.units_from_double(width)
            layout.wrap = pango.WrapMode.WORD_CHAR
        layout.alignment = {
            "left": pango.Alignment.LEFT,
            "center": pango.Alignment.CENTER,
            "right": pango.Alignment.RIGHT,
        }[align]
        if indent:
            from pangocffi import pango as lib

            lib.pango_layout_set_indent(layout.pointer, pango.units_from_double(indent))
        layout.text = text
        return layout

    def size(self, layout) -> tuple[float, float]:
        _, logical = layout.get_extents()
        return self.pango.units_to_double(logical.width), self.pango.units_to_double(logical.height)

    def draw(self, layout, x: float, y: float, texts: list[str]) -> float:
        """Draw ``layout`` with its top left at (x, y); ``texts`` are its lines' texts in order (added to
        the page's lines). Returns its height."""
        self.ctx.move_to(x, y)
        self.pc.show_layout(self.ctx, layout)
        self.lines.extend(t for t in texts if t.strip())
        return self.size(layout)[1]

    def text(
        self,
        text: str,
        em: float,
        x: float,
        y: float,
        width: float | None = None,
        align: str = "left",
        bold: bool = False,
        indent: float = 0.0,
    ) -> float:
        layout = self.layout(text, em, width, align, bold, indent)
        return self.draw(layout, x, y, line_texts(layout, text))

    def rule(self, x0: float, y0: float, x1: float, y1: float, width: float = 1.5) -> None:
        self.ctx.set_line_width(width)
        self.ctx.move_to(x0, y0)
        self.ctx.line_to(x1, y1)
        self.ctx.stroke()

    def gray(self) -> np.ndarray:
        self.surface.flush()
        bgrx = np.frombuffer(self.surface.get_data(), np.uint8).reshape(self.height, self.surface.get_stride() // 4, 4)
        return np.ascontiguousarray(bgrx[:, : self.width, 1])


def line_texts(layout, text: str) -> list[str]:
    """The text of each line Pango broke ``layout`` into."""
    from pangocffi import pango as lib

    raw = text.encode("utf-8")
    out = []
    for k in range(layout.get_line_count()):
        line = lib.pango_layout_get_line_readonly(layout.pointer, k)
        start, length = lib.pango_layout_line_get_start_index(line), lib.pango_layout_line_get_length(line)
        out.append(raw[start : start + length].decode("utf-8"))
    return out


class Texts:
    """Prose and form fields from the frozen out-of-distribution texts, drawn with ``rng``, only ones
    the face can draw."""

    def __init__(self, face, rng: np.random.Generator):
        from .ood import read_texts

        rows = [(source, text) for source, text in read_texts() if face.covers(text)]
        self.prose = [t for s, t in rows if s != "fields" and len(t) >= 6]
        self.fields = [t for s, t in rows if s == "fields"]
        self.rng = rng

    def sentence(self) -> str:
        return self.prose[int(self.rng.integers(len(self.prose)))]

    def paragraph(self, count: int) -> str:
        return "".join(self.sentence() for _ in range(count))

    def field(self) -> str:
        return self.fields[int(self.rng.integers(len(self.fields)))]

    def short(self, low: int = 2, high: int = 8) -> str:
        text = self.sentence()
        n = int(self.rng.integers(low, high + 1))
        start = int(self.rng.integers(0, max(1, len(text) - n)))
        return text[start : start + n].strip(" ，。、：；")


def article(c: Canvas, t: Texts) -> None:
    rng = c.rng
    y = MARGIN
    y += c.text(t.short(6, 14), 40, MARGIN, y, c.width - 2 * MARGIN, "center", bold=True) + 40
    gutter = float(rng.uniform(40, 70))
    col_w = (c.width - 2 * MARGIN - gutter) / 2
    em = float(rng.uniform(20, 26))
    bottom = c.height - MARGIN - 80
    x, top = MARGIN, y
    for _ in range(40):
        layout = c.layout(t.paragraph(int(rng.integers(2, 4))), em, col_w, indent=2 * em)
        h = c.size(layout)[1]
        if y + h > bottom:
            if x > MARGIN:
                break
            x, y = MARGIN + col_w + gutter, top
            if y + h > bottom:
                break
        y += c.draw(layout, x, y, line_texts(layout, layout.text)) + em * 0.8
    c.rule(MARGIN, c.height - MARGIN - 50, c.width - MARGIN, c.height - MARGIN - 50, 1.0)
    c.text(
        f"{t.short(4, 10)}  第{int(rng.integers(1, 40))}页",
        18,
        MARGIN,
        c.height - MARGIN - 40,
        c.width - 2 * MARGIN,
        "center",
    )


def table(c: Canvas, t: Texts) -> None:
    rng = c.rng
    y = MARGIN + 20
    y += c.text(t.short(6, 12), 34, MARGIN, y, c.width - 2 * MARGIN, "center", bold=True) + 40
    cols = int(rng.integers(3, 6))
    widths = rng.dirichlet(np.full(cols, 3.0)) * (c.width - 2 * MARGIN)
    widths = np.maximum(widths, 150)
    widths *= (c.width - 2 * MARGIN) / widths.sum()
    edges = MARGIN + np.concatenate([[0], np.cumsum(widths)])
    em = float(rng.uniform(20, 25))
    row_h = em * 2.2
    rows = int(rng.integers(8, 16))
    for r in range(rows + 1):
        c.rule(edges[0], y + r * row_h, edges[-1], y + r * row_h)
    for x in edges:
        c.rule(x, y, x, y + rows * row_h)
    for r in range(rows):
        for k in range(cols):
            if r == 0:
                cell = t.short(2, 5)
            elif k == 0:
                cell = t.short(3, 8)
            else:
                cell = (
                    t.field()
                    if rng.random() < 0.3
                    else f"{rng.uniform(1, 9999):.2f}"
                    if rng.random() < 0.5
                    else t.short(2, 6)
                )
            layout = c.layout(cell, em, widths[k] - 16)
            if len(line_texts(layout, cell)) > 1:  # a cell keeps one line
                cell = cell[: max(2, int((widths[k] - 16) / em) - 1)]
                layout = c.layout(cell, em, widths[k] - 16)
            h = c.size(layout)[1]
            c.draw(layout, edges[k] + 8, y + r * row_h + (row_h - h) / 2, [cell])


def letter(c: Canvas, t: Texts) -> None:
    rng = c.rng
    em = float(rng.uniform(22, 27))
    width = c.width - 2 * MARGIN
    y = MARGIN + 30
    date = f"{int(rng.integers(2019, 2027))}年{int(rng.integers(1, 13))}月{int(rng.integers(1, 29))}日"
    y += c.text(date, em, MARGIN, y, width, "right") + em
    y += c.text(f"尊敬的{t.short(2, 5)}：", em, MARGIN, y) + em * 0.6
    for _ in range(int(rng.integers(2, 5))):
        y += c.text(t.paragraph(int(rng.integers(2, 6))), em, MARGIN, y, width, indent=2 * em) + em * 0.6
    y += c.text("此致", em, MARGIN + 2 * em, y + em) + em
    y += c.text("敬礼", em, MARGIN, y + em * 0.4) + em * 2.5
    y += c.text(t.short(4, 10), em, MARGIN, y, width, "right") + em * 0.4
    c.text(
        f"{int(rng.integers(2019, 2027))}年{int(rng.integers(1, 13))}月{int(rng.integers(1, 29))}日",
        em,
        MARGIN,
        y,
        width,
        "right",
    )


def form(c: Canvas, t: Texts) -> None:
    rng = c.rng
    em = float(rng.uniform(21, 26))
    y = MARGIN + 20
    y += c.text(t.short(4, 10), 34, MARGIN, y, c.width - 2 * MARGIN, "center", bold=True) + 50
    half = (c.width - 2 * MARGIN) / 2
    label_w = float(rng.uniform(140, 200))
    for _ in range(int(rng.integers(10, 16))):
        pairs = 2 if rng.random() < 0.4 else 1
        for p in range(pairs):
            x = MARGIN + p * half
            value_w = (half if pairs == 2 else 2 * half) - label_w - 20
            label = t.short(2, 4) + "："
            value = t.field() if rng.random() < 0.6 else t.short(3, 10)
            value_layout = c.layout(value, em, value_w)
            if len(line_texts(value_layout, value)) > 1:
                value = value[: max(3, int(value_w / em) - 1)]
            c.text(label, em, x, y)
            c.text(value, em, x + label_w, y)
            c.rule(x + label_w - 4, y + em * 1.45, x + label_w + value_w, y + em * 1.45, 1.0)
        y += em * 2.6


def receipt(c: Canvas, t: Texts) -> None:
    rng = c.rng
    em = float(rng.uniform(20, 24))
    slip_w = float(rng.uniform(520, 640))
    x0 = (c.width - slip_w) / 2
    y = MARGIN + 40
    y += c.text(t.short(4, 8), em * 1.4, x0, y, slip_w, "center", bold=True) + em * 0.5
    y += c.text(t.field(), em * 0.9, x0, y, slip_w, "center") + em
    c.rule(x0, y, x0 + slip_w, y, 1.0)
    y += em * 0.6
    total = 0.0
    for _ in range(int(rng.integers(5, 12))):
        price = float(rng.uniform(1, 500))
        total += price
        name = t.short(2, 7)
        c.text(name, em, x0, y)
        c.text(f"{price:.2f}", em, x0, y, slip_w, "right")
        y += em * 1.7
    c.rule(x0, y, x0 + slip_w, y, 1.0)
    y += em * 0.6
    c.text("合计", em, x0, y, bold=True)
    y += c.text(f"{total:.2f}", em, x0, y, slip_w, "right", bold=True) + em
    c.text(t.short(4, 10), em * 0.9, x0, y, slip_w, "center")


DRAW = {"article": article, "table": table, "letter": letter, "form": form, "receipt": receipt}


def scanned(gray: np.ndarray, rng: np.random.Generator, seed: int) -> np.ndarray:
    import augraphy as ag
    import cv2

    random.seed(seed)
    np.random.seed(seed % (2**32))
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    steps = [
        ag.InkBleed(),
        ag.NoiseTexturize(),
        ag.LowInkRandomLines() if rng.random() < 0.5 else ag.LowInkPeriodicLines(),
        ag.SubtleNoise(),
    ]
    for step in steps:
        out = step(img, force=True)
        img = out[0] if isinstance(out, tuple) else out
    h, w = img.shape[:2]
    angle = float(rng.uniform(-1.5, 1.5))
    rotation = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    img = cv2.warpAffine(img, rotation, (w, h), borderValue=(235, 235, 235))
    return _jpeg(img, int(rng.integers(50, 90)))


def photographed(gray: np.ndarray, rng: np.random.Generator, seed: int) -> np.ndarray:
    import augraphy as ag
    import cv2

    random.seed(seed)
    np.random.seed(seed % (2**32))
    img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    for step in (ag.LightingGradient(), ag.SubtleNoise(), ag.ColorShift() if rng.random() < 0.5 else ag.Gamma()):
        out = step(img, force=True)
        img = out[0] if isinstance(out, tuple) else out
    h, w = img.shape[:2]
    scale = float(rng.uniform(0.75, 0.95))
    out_w, out_h = int(w * scale) + 120, int(h * scale) + 120
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    jitter = rng.uniform(-0.05, 0.05, (4, 2)) * [w * scale, h * scale]
    dst = np.float32([[60, 60], [60 + w * scale, 60], [60 + w * scale, 60 + h * scale], [60, 60 + h * scale]]) + jitter
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    table = tuple(int(v) for v in rng.integers(60, 120, 3))
    img = cv2.warpPerspective(img, matrix, (out_w, out_h), flags=cv2.INTER_AREA, borderValue=table)
    sigma = float(rng.uniform(0.3, 1.1))
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    return _jpeg(img, int(rng.integers(40, 80)))


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def render_pages(out: Path, font_dir: Path, per_layout: int = 4) -> dict:
    """``per_layout`` pages of every layout, each scanned and photographed, into ``out``."""
    import cv2

    from .ood import GROUPS, ood_faces
    from .pangorender import use_only_fonts_in

    use_only_fonts_in(font_dir)
    faces = ood_faces(font_dir)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for k, layout in enumerate(LAYOUTS):
        for i in range(per_layout):
            seed = SEED + 1000 * k + i
            rng = np.random.default_rng(seed)
            group = GROUPS[(i + k) % len(GROUPS)]
            pool = [f for f in faces if f.group == group]
            face = pool[int(rng.integers(len(pool)))]
            canvas = Canvas(face, rng)
            DRAW[layout](canvas, Texts(face, rng))
            gray = canvas.gray()
            for kind, degrade in (("scan", scanned), ("photo", photographed)):
                name = f"{layout}_{i:02d}_{kind}.jpg"
                cv2.imwrite(
                    str(out / name),
                    degrade(gray, np.random.default_rng([seed, len(kind)]), seed),
                    [cv2.IMWRITE_JPEG_QUALITY, 95],
                )
                records.append(
                    {"image": name, "layout": layout, "kind": kind, "face": face.label, "lines": canvas.lines}
                )
    with open(out / "pages.jsonl", "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    summary = {"version": VERSION, "seed": SEED, "pages": len(records), "layouts": list(LAYOUTS)}
    (out / "suite.json").write_text(json.dumps(summary, indent=1))
    return summary


def read_pages(folder: Path) -> list[dict]:
    with open(Path(folder) / "pages.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
