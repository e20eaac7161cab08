"""Fonts for the synthetic renderer, found where Debian packages install them.

Each face is checked with its cmap so a line is only ever rendered with a font
that really has every glyph (no tofu). Faces are split into a training pool and
a held-out pool used only for the dev sets; fonts reserved for independent
evaluation are refused by name even if they are installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

# Faces that npm packages carry (fetched by `python -m distill train-fonts`, `make run` does it)
# land in TRAIN_FONTS_DIR, beside what Debian packages install.
TRAIN_FONTS_DIR = Path(
    os.environ.get("OCR_TRAIN_FONTS_DIR", Path(__file__).resolve().parent.parent / "var/fonts/train")
)
FONT_ROOTS = (Path("/usr/share/fonts"), TRAIN_FONTS_DIR)
# OFL Chinese faces on npm, as unicode-range subsets merged back into one file each
TRAIN_FONTSOURCE = {
    "ZhiMangXing-Regular.ttf": "@fontsource/zhi-mang-xing@5.3.0",
    "LongCang-Regular.ttf": "@fontsource/long-cang@5.3.0",
    "LiuJianMaoCao-Regular.ttf": "@fontsource/liu-jian-mao-cao@5.3.0",
    "ZCOOLXiaoWei-Regular.ttf": "@fontsource/zcool-xiaowei@5.3.0",
    "ZCOOLKuaiLe-Regular.ttf": "@fontsource/zcool-kuaile@5.3.0",
    "ZCOOLQingKeHuangYou-Regular.ttf": "@fontsource/zcool-qingke-huangyou@5.3.0",
}

# Families that must never be used for training, tuning or model selection.
# Fonts whose glyphs come from a reserved one are refused too: WenQuanYi Micro Hei
# (from Droid Sans Fallback), AR PL UKai/UMing (siblings of the AR PL GB fonts),
# BabelStone Han (its Han glyphs are Arphic's; its Debian copyright names Arphic
# Technology) and Klee One (the design LXGW WenKai is built on).
RESERVED_NAME_PARTS = (
    "ar pl",
    "sungti",
    "kaiti",
    "ukai",
    "uming",
    "lxgw",
    "wenkai",
    "droid sans fallback",
    "microhei",
    "micro hei",
    "babelstone",
    "klee",
)

# (debian package, file name, face name wanted inside the file, split)
FACES = (
    ("fonts-noto-cjk", "NotoSansCJK-Regular.ttc", "Noto Sans CJK SC", "train"),
    ("fonts-noto-cjk", "NotoSansCJK-Bold.ttc", "Noto Sans CJK SC", "train"),
    ("fonts-noto-cjk-extra", "NotoSansCJK-Light.ttc", "Noto Sans CJK SC", "train"),
    ("fonts-noto-cjk-extra", "NotoSansCJK-Medium.ttc", "Noto Sans CJK SC", "train"),
    ("fonts-noto-cjk-extra", "NotoSansCJK-Black.ttc", "Noto Sans CJK SC", "train"),
    ("fonts-noto-cjk", "NotoSerifCJK-Regular.ttc", "Noto Serif CJK SC", "train"),
    ("fonts-noto-cjk", "NotoSerifCJK-Bold.ttc", "Noto Serif CJK SC", "train"),
    ("fonts-noto-cjk-extra", "NotoSerifCJK-Light.ttc", "Noto Serif CJK SC", "train"),
    ("fonts-noto-cjk-extra", "NotoSerifCJK-SemiBold.ttc", "Noto Serif CJK SC", "train"),
    ("fonts-noto-cjk", "NotoSansCJK-Regular.ttc", "Noto Sans Mono CJK SC", "train"),
    ("fonts-smiley-sans", "SmileySans-Oblique.ttf", "Smiley Sans", "train"),
    ("fonts-hanazono", "HanaMinA.ttf", "HanaMinA", "train"),
    ("fonts-dejavu-core", "DejaVuSans.ttf", "DejaVu Sans", "train"),
    ("fonts-dejavu-core", "DejaVuSerif.ttf", "DejaVu Serif", "train"),
    ("fonts-dejavu-core", "DejaVuSansMono.ttf", "DejaVu Sans Mono", "train"),
    ("fonts-liberation2", "LiberationSans-Regular.ttf", "Liberation Sans", "train"),
    ("fonts-liberation2", "LiberationSerif-Regular.ttf", "Liberation Serif", "train"),
    ("fonts-liberation2", "LiberationMono-Regular.ttf", "Liberation Mono", "train"),
    # more CJK designs, so the student meets more than the Noto families: two cover all of
    # GB2312 (a Taiwanese Sung and a handwritten face); the others cover 61-66 % of it
    # (Japanese and traditional-Chinese faces) and so render the lines they cover.
    ("fonts-cns11643-sung", "TW-Sung-98_1.ttf", "TW-Sung", "train"),
    ("fonts-seto", "setofont.ttf", "SetoFont", "train"),
    ("fonts-cwtex-heib", "cwheib.ttf", "cwTeXHeiBold", "train"),
    ("fonts-vlgothic", "VL-Gothic-Regular.ttf", "VL Gothic", "train"),
    ("fonts-ipaexfont-mincho", "ipaexm.ttf", "IPAexMincho", "train"),
    ("fonts-ipaexfont-gothic", "ipaexg.ttf", "IPAexGothic", "train"),
    ("fonts-horai-umefont", "ume-tmo3.ttf", "Ume Mincho", "train"),
    # Kai, Ming, FangSong and round designs (the weakest faces on the out-of-distribution suite
    # were Kai and brush ones), and brush, handwriting and display faces from npm
    ("fonts-cwtex-kai", "cwkai.ttf", "cwTeXKai", "train"),
    ("fonts-cwtex-ming", "cwming.ttf", "cwTeXMing", "train"),
    ("fonts-cwtex-fs", "cwfs.ttf", "cwTeXFangSong", "train"),
    ("fonts-cwtex-yen", "cwyen.ttf", "cwTeXYen", "train"),
    ("fonts-cns11643-kai", "TW-Kai-98_1.ttf", "TW-Kai", "train"),
    ("npm", "ZhiMangXing-Regular.ttf", "Zhi Mang Xing", "train"),
    ("npm", "LongCang-Regular.ttf", "Long Cang", "train"),
    ("npm", "LiuJianMaoCao-Regular.ttf", "Liu Jian Mao Cao", "train"),
    ("npm", "ZCOOLXiaoWei-Regular.ttf", "ZCOOL XiaoWei", "train"),
    ("npm", "ZCOOLKuaiLe-Regular.ttf", "ZCOOL KuaiLe", "train"),
    ("npm", "ZCOOLQingKeHuangYou-Regular.ttf", "ZCOOL QingKe HuangYou", "train"),
    # held out: only ever used for the dev sets
    ("fonts-wqy-zenhei", "wqy-zenhei.ttc", "WenQuanYi Zen Hei", "dev"),
    ("fonts-noto-cjk-extra", "NotoSansCJK-DemiLight.ttc", "Noto Sans CJK SC", "dev"),
    ("fonts-noto-cjk-extra", "NotoSerifCJK-Medium.ttc", "Noto Serif CJK SC", "dev"),
    ("fonts-liberation2", "LiberationSans-Bold.ttf", "Liberation Sans", "dev"),
)


def debian_packages() -> list[str]:
    """The Debian packages the faces above come from, each once: ``python -m distill
    font-packages`` prints them for scripts/system-deps.sh and docker/Dockerfile.training."""
    return sorted({package for package, *_ in FACES if package != "npm"})


@dataclass(frozen=True)
class Face:
    path: str
    index: int
    name: str
    style: str
    split: str
    package: str

    @property
    def label(self) -> str:
        return f"{self.name} {self.style}"

    @property
    def family(self) -> str:
        """The family name fontconfig and Pango know the face by."""
        return self.name

    def covers(self, text: str) -> bool:
        cps = coverage(self.path, self.index)
        return all(ord(c) in cps or c.isspace() for c in text)

    def pil(self, size: int) -> ImageFont.FreeTypeFont:
        return _pil_font(self.path, self.index, size)


class FontError(RuntimeError):
    pass


def _find_file(name: str, roots=FONT_ROOTS) -> Path | None:
    for root in roots:
        hits = sorted(root.rglob(name)) if root.is_dir() else []
        if hits:
            return hits[0]
    return None


def _face_index(path: Path, wanted: str) -> tuple[int, str, str] | None:
    for i in range(32):
        try:
            family, style = ImageFont.truetype(str(path), 12, index=i).getname()
        except OSError:
            break
        if family == wanted:
            return i, family, style
    return None


def is_reserved(name: str) -> bool:
    low = name.lower()
    return any(part in low for part in RESERVED_NAME_PARTS)


@lru_cache(maxsize=1)
def discover(roots: tuple[Path, ...] = FONT_ROOTS) -> tuple[Face, ...]:
    faces = []
    for package, filename, wanted, split in FACES:
        path = _find_file(filename, roots)
        if path is None:
            continue
        found = _face_index(path, wanted)
        if found is None:
            continue
        index, family, style = found
        if is_reserved(family):
            raise FontError(f"{path} ({family}) is reserved for independent evaluation")
        faces.append(Face(str(path), index, family, style, split, package))
    return tuple(faces)


def faces_for(split: str) -> tuple[Face, ...]:
    faces = tuple(f for f in discover() if f.split == split)
    if not faces:
        raise FontError(
            f"no {split} fonts found under {', '.join(map(str, FONT_ROOTS))}; install the Debian packages "
            "listed in scripts/system-deps.sh"
        )
    return faces


@lru_cache(maxsize=64)
def coverage(path: str, index: int) -> frozenset[int]:
    """The code points the face draws: its cmap, less those mapped to an empty TrueType glyph
    (no outline data), which a renderer draws as nothing. Kouzan Brush maps 7,225 code points so
    and SetoFont 1,049 of our charset's; a line drawn with one would hold a character its image
    does not show. White space is kept (it draws nothing anyway)."""
    from fontTools.ttLib import TTFont

    font = TTFont(path, fontNumber=index, lazy=True)
    try:
        cmap = font.getBestCmap() or {}
        if "glyf" not in font or "loca" not in font:
            return frozenset(cmap)
        order, offsets = font.getGlyphOrder(), font["loca"].locations
        empty = {name for i, name in enumerate(order) if i + 1 < len(offsets) and offsets[i + 1] == offsets[i]}
        return frozenset(cp for cp, name in cmap.items() if name not in empty or chr(cp).isspace())
    finally:
        font.close()


@lru_cache(maxsize=512)
def _pil_font(path: str, index: int, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, index=index)


def fetch_fontsource(files: dict[str, str], font_dir: Path) -> list[Path]:
    """Each ``file name -> npm package`` into ``font_dir`` (skipping those already there): the
    package's unicode-range subsets (``npm pack``) merged back into one font."""
    import subprocess
    import tempfile

    font_dir = Path(font_dir)
    font_dir.mkdir(parents=True, exist_ok=True)
    for name, package in files.items():
        if (font_dir / name).is_file():
            continue
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["npm", "pack", "--silent", package], cwd=tmp, check=True, capture_output=True)
            tgz = next(Path(tmp).glob("*.tgz"))
            subprocess.run(["tar", "xzf", str(tgz), "-C", tmp], check=True)
            parts = sorted((Path(tmp) / "package" / "files").glob("*-400-normal.woff"))
            if not parts:
                raise FontError(f"{package} has no 400-weight .woff subsets")
            merge_subsets(parts, font_dir / name)
    return [font_dir / name for name in files]


def merge_subsets(parts: list[Path], out: Path) -> Path:
    """One font from the unicode-range subsets a web font package splits a CJK face into."""
    import tempfile

    from fontTools.merge import Merger, Options
    from fontTools.ttLib import TTFont

    with tempfile.TemporaryDirectory() as tmp:
        plain = []
        for i, part in enumerate(parts):
            font = TTFont(str(part))
            font.flavor = None
            plain.append(str(Path(tmp) / f"{i}.ttf"))
            font.save(plain[-1])
        merged = Merger(Options(drop_tables=["vmtx", "vhea", "GSUB", "GPOS", "GDEF"])).merge(plain)
        merged.save(str(out))
    return out
