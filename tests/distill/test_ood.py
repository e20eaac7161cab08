"""The out-of-distribution suite: its texts, its renderer and its capture conditions."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from distill import ood, pangorender
from engine.charset import load_charset


def write_mo(path: Path, catalog: dict[str, str]) -> Path:
    """A GNU .mo file (little endian, no hash table) holding ``catalog``."""
    keys = sorted(catalog)
    ids = [k.encode("utf-8") for k in keys]
    strs = [catalog[k].encode("utf-8") for k in keys]
    n = len(keys)
    key_table, value_table = 28, 28 + 8 * n
    offset = 28 + 16 * n
    key_entries, blob = [], b""
    for b in ids:
        key_entries.append((len(b), offset + len(blob)))
        blob += b + b"\0"
    value_entries = []
    for b in strs:
        value_entries.append((len(b), offset + len(blob)))
        blob += b + b"\0"
    head = struct.pack("<7I", 0x950412DE, 0, n, key_table, value_table, 0, 0)
    tables = b"".join(struct.pack("<2I", *e) for e in key_entries + value_entries)
    path.write_bytes(head + tables + blob)
    return path


def test_catalogue_segments_drop_placeholders_accelerators_and_leftovers(tmp_path):
    mo = write_mo(
        tmp_path / "x.mo",
        {
            "": "Content-Type: text/plain; charset=UTF-8\n",
            "a": "无法打开文件 %s：%s",
            "b": "_Open file",  # no Chinese: dropped
            "c": "打开(_O)\n关闭窗口",
            "d": "选项“%s”含义不清",  # leaves empty quotes behind: dropped
            "e": "第一句。第二句很长",
        },
    )
    segments = ood.catalogue_segments(mo)
    assert "打开" in segments and "关闭窗口" in segments
    assert "无法打开文件" in segments  # the placeholders and the colon between them are gone
    assert not any("%" in s or "_" in s or "“”" in s.replace(" ", "") for s in segments)
    assert "第一句。" in segments and "第二句很长" in segments


def test_the_suite_texts_come_from_half_the_catalogues_and_fit_the_charset(tmp_path):
    allowed = set(load_charset().chars)
    names = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    assert {ood.text_bucket(n) for n in names} == {0, 1}
    for name in names:
        write_mo(
            tmp_path / f"{name}.mo",
            {
                "": "Content-Type: text/plain; charset=UTF-8\n",
                **{f"k{j}": f"{name}的第{j}条消息文本" for j in range(30)},
            },
        )
    first = ood.extract_texts(tmp_path, allowed, count=40, field_share=0.25)
    assert first == ood.extract_texts(tmp_path, allowed, count=40, field_share=0.25)  # frozen by its seed
    sources = {s for s, _ in first}
    assert sources - {"fields"} <= {n for n in names if ood.text_bucket(n) == 1}
    assert sum(s == "fields" for s, _ in first) == 10
    assert len({t for _, t in first}) == len(first)
    assert all(c in allowed or c == " " for _, t in first for c in t)


def test_the_frozen_texts_are_enough_for_the_suite_and_fit_the_charset():
    allowed = set(load_charset().chars)
    texts = ood.read_texts()
    assert len(texts) >= sum(ood.SUBSETS.values())
    assert len({t for _, t in texts}) == len(texts)
    assert all(c in allowed or c == " " for _, t in texts for c in t)


@pytest.fixture(scope="session")
def stand_in_font_dir(tmp_path_factory):
    """One folder for the whole run: fontconfig reads its configuration once per process."""
    from distill.fonts import _find_file

    sans, serif = _find_file("NotoSansCJK-Regular.ttc"), _find_file("NotoSerifCJK-Regular.ttc")
    assert sans and serif, "scripts/system-deps.sh installs the Noto CJK fonts"
    font_dir = tmp_path_factory.mktemp("ood-fonts")
    (font_dir / "sans.ttc").symlink_to(sans)
    (font_dir / "serif.ttc").symlink_to(serif)
    return font_dir


@pytest.fixture
def installed_faces(stand_in_font_dir, monkeypatch):
    """Stand-ins for the suite's fonts (which are fetched, not installed): faces that
    scripts/system-deps.sh installs, linked under the names the suite expects."""
    font_dir = stand_in_font_dir
    monkeypatch.setenv("FONTCONFIG_FILE", "")  # restored after the test, whatever the suite sets
    faces = (
        ("sans.ttc", "Noto Sans CJK SC", "Regular", "Hei"),
        ("serif.ttc", "Noto Serif CJK SC", "Regular", "Song"),
        ("serif.ttc", "Noto Serif CJK SC", "Bold", "Kai"),  # a stand-in for the Kai group
    )
    monkeypatch.setattr(ood, "OOD_FACES", faces)
    monkeypatch.setattr(ood, "GROUPS", ("Hei", "Song"))
    return font_dir


def test_the_suite_renders_the_same_lines_every_time(tmp_path, installed_faces):
    texts = [
        ("t", "配置文件已保存"),
        ("t", "无法连接到服务器"),
        ("fields", "订单编号：AB-2024-00012"),
        ("t", "正在下载软件包"),
        ("t", "权限不够"),
        ("t", "校验和不匹配"),
    ]
    sizes = {"clean": 2, "scan": 1, "photo": 1, "kai": 1}
    a = ood.render_suite(tmp_path / "a", installed_faces, texts=texts, sizes=sizes)
    b = ood.render_suite(tmp_path / "b", installed_faces, texts=texts, sizes=sizes)
    assert a == b and a["subsets"] == {k: {"lines": v} for k, v in sizes.items()}
    for subset in sizes:
        for png in sorted((tmp_path / "a" / subset / "lines").glob("*.png")):
            assert png.read_bytes() == (tmp_path / "b" / subset / "lines" / png.name).read_bytes()
    labels = (tmp_path / "a" / "clean" / "labels.tsv").read_text(encoding="utf-8").splitlines()
    assert [row.split("\t")[1] for row in labels] == ["配置文件已保存", "无法连接到服务器"]
    fonts = (tmp_path / "a" / "clean" / "fonts.tsv").read_text(encoding="utf-8").splitlines()
    assert [row.split("\t")[1] for row in fonts] == ["Noto Sans CJK SC Regular", "Noto Serif CJK SC Regular"]
    kai = (tmp_path / "a" / "kai" / "fonts.tsv").read_text(encoding="utf-8")
    assert "Noto Serif CJK SC Bold" in kai


def test_pango_draws_dark_text_on_white(installed_faces):
    pangorender.use_only_fonts_in(installed_faces)
    face = ood.OodFace(str(installed_faces / "sans.ttc"), "Noto Sans CJK SC", "Regular", "Hei")
    img = pangorender.PangoLine().draw("增值税发票", face, 14.0, np.random.default_rng(0))
    ink = np.where((img < 128).any(axis=0))[0]
    assert img.dtype == np.uint8 and img.max() == 255 and img.min() < 60
    assert 50 <= ink[-1] - ink[0] <= 80  # five 14 px glyphs, drawn at that size


def test_tight_crops_keep_one_or_two_pixels_around_the_ink():
    img = np.full((60, 200), 255, np.uint8)
    img[20:35, 40:150] = 0
    rng = np.random.default_rng(1)
    tight = ood.crop_to_ink(img, rng, loose=False)
    assert 17 <= tight.shape[0] <= 19 and 112 <= tight.shape[1] <= 114
    loose = ood.crop_to_ink(img, rng, loose=True)
    assert loose.shape[0] > tight.shape[0] and loose.shape[1] > tight.shape[1]


def test_photographed_lines_come_out_at_camera_resolution():
    img = np.full((50, 300), 255, np.uint8)
    img[8:42, 10:290] = 0
    for seed in range(5):
        out = ood.photographed(img, np.random.default_rng(seed))
        rows = np.where((out < 128).any(axis=1))[0]
        assert out.dtype == np.uint8 and 12 <= rows[-1] - rows[0] + 1 <= 24
