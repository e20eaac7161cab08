"""The portal's two string tables stay complete and match what the code asks for."""

from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from frontend.strings import UI, catalog, language_key

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_language_has_every_key():
    keys = {language: set(table) for language, table in UI.items()}
    reference = keys["zh-hans"]
    for language, own in keys.items():
        assert own == reference, f"{language}: missing {reference - own}, extra {own - reference}"


@pytest.mark.parametrize("key", sorted(UI["zh-hans"]))
def test_translations_fill_the_same_placeholders(key):
    assert placeholders(UI["en"][key]) == placeholders(UI["zh-hans"][key])


def test_every_key_the_scripts_and_templates_use_exists():
    used = set()
    for path in (FRONTEND / "static" / "frontend" / "js").glob("*.js"):
        source = path.read_text()
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']""", source))
        used |= {f"status_{s}" for s in ("uploading", "queued", "running", "succeeded", "failed", "rejected")}
    for path in (FRONTEND / "templates").rglob("*.html"):
        used |= set(re.findall(r"""\{%\s*ui\s+["']([a-z0-9_]+)["']""", path.read_text()))
    assert used - set(UI["zh-hans"]) == set()


@pytest.mark.parametrize(
    ("code", "key"),
    [("zh-hans", "zh-hans"), ("zh-cn", "zh-hans"), ("en", "en"), ("en-gb", "en"), ("fr", "zh-hans"), (None, "zh-hans")],
)
def test_it_maps_language_codes_to_tables(code, key):
    assert language_key(code) == key
    assert catalog(code) is UI[key]
