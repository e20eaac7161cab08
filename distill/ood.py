"""The out-of-distribution dev suite: lines made unlike anything the models train on.

It differs from training in every way it can:

- **renderer**: Pango/HarfBuzz through cairo (training draws with PIL/FreeType), with hinting
  and antialiasing variants, at natively small sizes (12-20 px em are rendered at that size);
- **fonts**: families no training pool holds (``OOD_FACES``: FandolSong, FandolHei, FandolKai,
  FandolFang and the brush face Ma Shan Zheng), fetched by ``scripts/ood-fonts.sh``;
- **text**: technical prose from the zh_CN gettext catalogues of one half of the packages
  (``text_bucket``), and form fields from templates written here; frozen in
  ``distill/ood_texts.tsv``, so the suite does not depend on what a machine has installed;
- **capture**: scan, photo and crop-margin conditions written here, not ``distill.augment``.

Every line is drawn from a seed of its own, so the same command writes the same suite.
This suite decides defaults and selects models; it is never training data.
"""

from __future__ import annotations

import gettext
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pangorender import PangoLine, use_only_fonts_in

TEXTS_FILE = Path(__file__).with_name("ood_texts.tsv")
SUITE_VERSION = "1"
# subset -> lines (the sizes of the independent benchmark's subsets)
SUBSETS = {"clean": 400, "scan": 400, "photo": 300, "kai": 200}
SEED = 20261130

# (file, family as fontconfig names it, style, family group)
OOD_FACES = (
    ("FandolSong-Regular.otf", "FandolSong", "Regular", "Song"),
    ("FandolSong-Bold.otf", "FandolSong", "Bold", "Song"),
    ("FandolHei-Regular.otf", "FandolHei", "Regular", "Hei"),
    ("FandolHei-Bold.otf", "FandolHei", "Bold", "Hei"),
    ("FandolKai-Regular.otf", "FandolKai", "Regular", "Kai"),
    ("FandolFang-Regular.otf", "FandolFang", "Regular", "Fang"),
    ("MaShanZheng-Regular.ttf", "Ma Shan Zheng", "Regular", "Brush"),
)
GROUPS = ("Song", "Hei", "Kai", "Fang", "Brush")

# --------------------------------------------------------------------------- texts

FIELD_LABELS = (
    "订单编号",
    "客户名称",
    "联系人",
    "交货日期",
    "商品编码",
    "结算方式",
    "付款期限",
    "含税单价",
    "不含税金额",
    "收货地址",
    "经办人",
    "审核人",
    "合同编号",
    "项目名称",
    "供应商",
    "采购数量",
    "运费",
    "折扣",
    "应收账款",
    "币种",
    "出库单号",
    "物料编码",
    "批次号",
    "有效期至",
    "凭证号",
    "摘要",
    "借方金额",
    "贷方金额",
    "余额",
)
FIELD_UNITS = ("盒", "包", "卷", "桶", "瓶", "支", "组", "袋", "只", "把")
_FORMAT_SPEC = re.compile(
    r"%(\d+\$)?[-#0 +']*(\d+|\*)?(\.(\d+|\*))?(hh|h|ll|l|L|q|j|z|t)?[diouxXeEfgGcspn%]"
    r"|\{[^}]*\}|\$\{[^}]*\}|<[^>]*>|\\[nt]"
)
_ACCEL = re.compile(r"\(_[A-Za-z0-9]\)|\(&[A-Za-z0-9]\)|_(?=[A-Za-z0-9])|&(?=[A-Za-z0-9])")
_CJK = re.compile(r"[\u4e00-\u9fff]")
# what a removed placeholder leaves behind: empty quotes or brackets, a bare 0x, stray % or backslash
_LEFTOVER = re.compile(r"['\"“‘「]\s*['\"”’」]|\(\s*\)|（\s*）|\[\s*\]|%|\\|0x(?![0-9A-Fa-f])|\s[,，:：]")


def text_bucket(package: str) -> int:
    """Half of the catalogues (bucket 1) are the suite's; the other half may train models."""
    return hashlib.md5(package.encode("utf-8")).digest()[0] % 2


def catalogue_segments(mo_path: Path) -> list[str]:
    """Translated strings of one catalogue, cleaned of format specifiers, accelerators and
    markup, cut at line breaks and sentence ends."""
    with open(mo_path, "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    out = []
    for value in catalog.values():
        if not isinstance(value, str) or not _CJK.search(value):
            continue
        value = _ACCEL.sub("", _FORMAT_SPEC.sub(" ", value))
        for piece in re.split(r"[\n\r\t]+|(?<=[。；！？])", value):
            piece = " ".join(piece.split()).strip(" :：,，.")
            if piece and not _LEFTOVER.search(piece):
                out.append(piece)
    return out


def field_line(rng: np.random.Generator) -> str:
    label = FIELD_LABELS[int(rng.integers(len(FIELD_LABELS)))]
    kind = int(rng.integers(6))
    if kind == 0:
        value = f"¥{int(rng.integers(1, 999999)):,}.{int(rng.integers(100)):02d}"
    elif kind == 1:
        y, m, d = int(rng.integers(2015, 2031)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
        value = f"{y}年{m}月{d}日" if rng.random() < 0.5 else f"{y}-{m:02d}-{d:02d}"
    elif kind == 2:
        prefix = "".join(chr(int(c)) for c in rng.integers(65, 91, 2))
        value = f"{prefix}-{int(rng.integers(2015, 2031))}-{int(rng.integers(0, 99999)):05d}"
    elif kind == 3:
        value = f"0{int(rng.integers(10, 999))}-{int(rng.integers(1000, 9999))} {int(rng.integers(1000, 9999))}"
    elif kind == 4:
        value = f"{int(rng.integers(1, 500))}{FIELD_UNITS[int(rng.integers(len(FIELD_UNITS)))]}"
    else:
        value = f"{rng.uniform(0.01, 99.0):.2f}%"
    sep = "：" if rng.random() < 0.7 else ": "
    return f"{label}{sep}{value}"


def extract_texts(
    locale_dir: Path, allowed: set[str], count: int, field_share: float = 0.3, seed: int = SEED
) -> list[tuple[str, str]]:
    """(source, text) pairs: prose from the bucket-1 catalogues under ``locale_dir`` and form
    fields, every character in ``allowed``, 4-26 characters long, no text twice."""
    rng = np.random.default_rng(seed)
    prose: dict[str, str] = {}
    for mo in sorted(Path(locale_dir).glob("*.mo")):
        if text_bucket(mo.stem) != 1:
            continue
        for seg in catalogue_segments(mo):
            length = len(seg.replace(" ", ""))
            if 4 <= length <= 26 and len(_CJK.findall(seg)) >= 2 and all(c in allowed or c == " " for c in seg):
                prose.setdefault(seg, mo.stem)
    items = sorted(prose.items())
    order = rng.permutation(len(items))
    n_fields = int(round(count * field_share))
    picked = [(items[i][1], items[i][0]) for i in order[: count - n_fields]]
    fields: set[str] = set()
    while len(fields) < n_fields:
        line = field_line(rng)
        if all(c in allowed or c == " " for c in line):
            fields.add(line)
    picked += [("fields", f) for f in sorted(fields)]
    return [picked[i] for i in rng.permutation(len(picked))]


def write_texts(pairs: list[tuple[str, str]], path: Path = TEXTS_FILE) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("# source\ttext: the frozen texts of the out-of-distribution suite (python -m distill ood-texts)\n")
        for source, text in pairs:
            f.write(f"{source}\t{text}\n")


def read_texts(path: Path = TEXTS_FILE) -> list[tuple[str, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, text = line.split("\t", 1)
            rows.append((source, text))
    return rows


# --------------------------------------------------------------------------- fonts and Pango


@dataclass(frozen=True)
class OodFace:
    path: str
    family: str
    style: str
    group: str

    @property
    def label(self) -> str:
        return f"{self.family} {self.style}"

    def covers(self, text: str) -> bool:
        from .fonts import coverage

        cps = coverage(self.path, 0)
        return all(ord(c) in cps or c.isspace() for c in text)


def ood_faces(font_dir: Path) -> tuple[OodFace, ...]:
    faces = []
    missing = []
    for filename, family, style, group in OOD_FACES:
        path = Path(font_dir) / filename
        if path.is_file():
            faces.append(OodFace(str(path), family, style, group))
        else:
            missing.append(filename)
    if missing:
        raise FileNotFoundError(f"{font_dir} lacks {', '.join(missing)}: run scripts/ood-fonts.sh {font_dir}")
    return tuple(faces)


# --------------------------------------------------------------------------- capture conditions


def crop_to_ink(gray: np.ndarray, rng: np.random.Generator, loose: bool) -> np.ndarray:
    """Cut to the ink plus a margin: tight (1-2 px) or loose (as a line finder pads a band, or
    more), each side drawn on its own."""
    ys, xs = np.where(gray < 160)
    if len(ys) == 0:
        return gray
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h = y1 - y0
    if loose:
        top, bot = (int(rng.uniform(0.08, 0.45) * h) for _ in range(2))
        left, right = (int(rng.uniform(0.1, 1.0) * h) for _ in range(2))
    else:
        top, bot, left, right = (int(rng.integers(1, 3)) for _ in range(4))
    pad = max(top, bot, left, right) + 2
    padded = np.pad(gray, pad, constant_values=255)
    return padded[y0 + pad - top : y1 + pad + bot, x0 + pad - left : x1 + pad + right]


def tone(gray: np.ndarray, rng: np.random.Generator, paper=(215, 252), ink=(0, 70)) -> np.ndarray:
    """Black on white to ink on paper."""
    p, i = float(rng.uniform(*paper)), float(rng.uniform(*ink))
    return (i + (gray.astype(np.float32) / 255.0) * (p - i)).astype(np.float32)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.clip(img, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)


def scanned(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    import cv2

    img = tone(gray, rng, paper=(200, 248), ink=(5, 80))
    h, w = img.shape
    angle = float(rng.uniform(-1.5, 1.5))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_LINEAR)
    img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.3, 1.0)))
    img = img + rng.normal(0, float(rng.uniform(2, 9)), img.shape)
    if rng.random() < 0.3:  # toner specks
        specks = rng.random(img.shape) < float(rng.uniform(0.001, 0.006))
        img[specks] = float(rng.uniform(0, 90))
    return jpeg(img, int(rng.integers(40, 90)))


def photographed(gray: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Perspective and uneven light at the drawn size; then the camera's resolution (the ink
    14-20 px high, so hanzi bodies of about 12-16 px), mild defocus or motion blur at that
    resolution on most lines, sensor noise, JPEG q 20-60."""
    import cv2

    rows = np.where((gray < 160).any(axis=1))[0]
    ink_h = int(rows[-1] - rows[0] + 1) if len(rows) else gray.shape[0]
    img = tone(gray, rng, paper=(165, 245), ink=(10, 60))
    h, w = img.shape
    jitter = 0.12 * h
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = src + rng.uniform(-jitter, jitter, src.shape).astype(np.float32)
    img = cv2.warpPerspective(img, cv2.getPerspectiveTransform(src, dst), (w, h), borderMode=cv2.BORDER_REPLICATE)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx, gy = rng.uniform(-1, 1, 2)
    ramp = gx * xx / max(w, 1) + gy * yy / max(h, 1)
    light = 1.0 - float(rng.uniform(0.1, 0.35)) * (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    cx, cy = rng.uniform(0, w), rng.uniform(0, h)
    spot = np.exp(-(((xx - cx) / (0.6 * w)) ** 2 + ((yy - cy) / (1.5 * h)) ** 2))
    img = img * light + float(rng.uniform(0, 35)) * spot
    scale = int(rng.integers(14, 21)) / max(ink_h, 1)
    img = cv2.resize(img, (max(8, int(round(w * scale))), max(8, int(round(h * scale)))), interpolation=cv2.INTER_AREA)
    blur = rng.random()
    if blur < 0.4:
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.2, 0.6)))  # defocus
    elif blur < 0.7:
        length = int(rng.integers(1, 3))
        kernel = np.zeros((2 * length + 1, 2 * length + 1), np.float32)
        kernel[length, length // 2 : length // 2 + length + 1] = 1.0
        rot = cv2.getRotationMatrix2D((float(length), float(length)), float(rng.uniform(0, 180)), 1.0)
        kernel = cv2.warpAffine(kernel, rot, kernel.shape[::-1])
        img = cv2.filter2D(img, -1, kernel / max(float(kernel.sum()), 1e-6))  # motion
    img = img + rng.normal(0, float(rng.uniform(2, 6)), img.shape)
    return jpeg(img, int(rng.integers(20, 61)))


# --------------------------------------------------------------------------- the suite


def _face_for(text: str, faces: tuple[OodFace, ...], group: str, rng) -> OodFace | None:
    fits = [f for f in faces if f.group == group and f.covers(text)]
    return fits[int(rng.integers(len(fits)))] if fits else None


def render_suite(
    out: Path,
    font_dir: Path,
    texts: list[tuple[str, str]] | None = None,
    sizes: dict[str, int] | None = None,
    seed: int = SEED,
) -> dict:
    """Write ``out/<subset>/`` (labels.tsv, fonts.tsv, lines) for every subset, and a manifest."""
    import cv2

    from .data import write_labels

    faces = ood_faces(font_dir)
    use_only_fonts_in(font_dir)
    pango = PangoLine()
    texts = texts if texts is not None else read_texts()
    sizes = sizes or SUBSETS
    cursor = 0
    manifest = {"version": SUITE_VERSION, "seed": seed, "texts_sha256": _sha(texts), "subsets": {}}
    for s_index, (subset, count) in enumerate(sizes.items()):
        folder = Path(out) / subset
        (folder / "lines").mkdir(parents=True, exist_ok=True)
        items, font_rows = [], []
        while len(items) < count:
            if cursor >= len(texts):
                raise ValueError(f"{len(texts)} texts are too few for the suite's {sum(sizes.values())} lines")
            source, text = texts[cursor]
            cursor += 1
            rng = np.random.default_rng([seed, s_index, cursor])
            group = "Kai" if subset == "kai" else GROUPS[len(items) % len(GROUPS)]
            face = _face_for(text, faces, group, rng)
            if face is None:
                continue
            img = render_one(pango, text, face, subset, rng)
            rel = f"lines/{len(items):05d}.png"
            cv2.imwrite(str(folder / rel), img)
            items.append((rel, text))
            font_rows.append(f"{rel}\t{face.label}")
        write_labels(folder, items)
        (folder / "fonts.tsv").write_text("\n".join(font_rows) + "\n", encoding="utf-8")
        manifest["subsets"][subset] = {"lines": len(items)}
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def render_one(pango: PangoLine, text: str, face: OodFace, subset: str, rng: np.random.Generator) -> np.ndarray:
    if subset == "clean" or (subset == "kai" and rng.random() < 0.5):
        em = float(rng.uniform(12, 40)) if rng.random() < 0.6 else float(rng.uniform(12, 20))
        return np.ascontiguousarray(
            tone(
                crop_to_ink(pango.draw(text, face, em, rng), rng, rng.random() < 0.5),
                rng,
                paper=(235, 255),
                ink=(0, 40),
            ).astype(np.uint8)
        )
    if subset in ("scan", "kai"):
        gray = crop_to_ink(pango.draw(text, face, float(rng.uniform(14, 36)), rng), rng, rng.random() < 0.5)
        return scanned(gray, rng)
    if subset == "photo":
        gray = crop_to_ink(pango.draw(text, face, float(rng.uniform(20, 40)), rng), rng, rng.random() < 0.5)
        return photographed(gray, rng)
    raise ValueError(f"unknown subset {subset!r}")


def _sha(texts: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{s}\t{t}" for s, t in texts).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- fetching the fonts

FANDOL_DEB = "texlive-lang-chinese"
FANDOL_DIR = "usr/share/texlive/texmf-dist/fonts/opentype/public/fandol"
FONTSOURCE = {"MaShanZheng-Regular.ttf": "@fontsource/ma-shan-zheng@5.3.1"}


def fetch_fonts(font_dir: Path) -> list[Path]:
    """Put the suite's faces into ``font_dir``: the Fandol files alone out of Debian's
    texlive-lang-chinese (downloaded and unpacked, not installed: installing it would pull in
    fonts reserved for independent evaluation), and Ma Shan Zheng from npm
    (``fonts.fetch_fontsource``)."""
    import subprocess
    import tempfile

    from .fonts import fetch_fontsource

    font_dir = Path(font_dir)
    font_dir.mkdir(parents=True, exist_ok=True)
    wanted = [name for name, *_ in OOD_FACES if name.startswith("Fandol") and not (font_dir / name).is_file()]
    if wanted:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["apt-get", "download", FANDOL_DEB], cwd=tmp, check=True, capture_output=True)
            deb = next(Path(tmp).glob(f"{FANDOL_DEB}_*.deb"))
            subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
            for name in wanted:
                (font_dir / name).write_bytes((Path(tmp) / "x" / FANDOL_DIR / name).read_bytes())
    fetch_fontsource(FONTSOURCE, font_dir)
    return [font_dir / name for name, *_ in OOD_FACES]
