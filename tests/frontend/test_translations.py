"""The portal speaks through Django's gettext: English msgids in the templates ({% translate %}) and
the scripts (gettext through JavaScriptCatalog), with zh-Hans and English catalogues in
frontend/locale. Every string the pages use is translated, with the same placeholders, and the
compiled catalogues match their sources."""

from __future__ import annotations

import gettext as gnu
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
LOCALE = FRONTEND / "locale"
LANGUAGES = ("zh_Hans", "en")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def used_in_templates() -> set[str]:
    found = set()
    for path in (FRONTEND / "templates").rglob("*.html"):
        found |= set(re.findall(r"""\{%\s*(?:translate|trans)\s+"([^"]+)"\s*%\}""", path.read_text()))
    return found


def used_in_scripts() -> set[str]:
    found = set()
    for path in (FRONTEND / "static" / "frontend" / "js").glob("*.js"):
        found |= {json.loads(f'"{m}"') for m in re.findall(r'\bgettext\(\s*"((?:[^"\\]|\\.)*)"', path.read_text())}
    return found


def catalogue(language: str, domain: str) -> dict[str, str]:
    with open(LOCALE / language / "LC_MESSAGES" / f"{domain}.mo", "rb") as f:
        return {k: v for k, v in gnu.GNUTranslations(f)._catalog.items() if k}  # "" is the header


USED = {"django": used_in_templates, "djangojs": used_in_scripts}


def test_the_pages_and_scripts_use_gettext_only():
    assert len(used_in_templates()) > 20 and len(used_in_scripts()) > 50
    assert not (FRONTEND / "strings.py").exists()
    for path in (FRONTEND / "static" / "frontend" / "js").glob("*.js"):
        assert not re.search(r"""\bt\(\s*["'`]""", path.read_text()), f"{path.name} still looks strings up by key"


@pytest.mark.parametrize("domain", sorted(USED))
def test_every_string_in_use_has_a_chinese_translation_with_the_same_placeholders(domain):
    zh = catalogue("zh_Hans", domain)
    used = USED[domain]()
    assert used - set(zh) == set(), "untranslated"
    for msgid in used:
        assert zh[msgid].strip() and zh[msgid] != msgid, msgid
        assert set(PLACEHOLDER.findall(zh[msgid])) == set(PLACEHOLDER.findall(msgid)), msgid


@pytest.mark.parametrize("domain", sorted(USED))
def test_the_catalogues_hold_no_strings_the_pages_stopped_using(domain):
    for language in LANGUAGES:
        stale = set(catalogue(language, domain)) - USED[domain]()
        assert not stale, f"{language}/{domain}.po: run makemessages (make messages): {sorted(stale)}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("domain", sorted(USED))
def test_the_compiled_catalogues_match_their_sources(language, domain, tmp_path):
    msgfmt = shutil.which("msgfmt")
    assert msgfmt, "scripts/system-deps.sh test installs gettext (msgfmt)"
    source = LOCALE / language / "LC_MESSAGES" / f"{domain}.po"
    fresh = tmp_path / f"{domain}.mo"
    subprocess.run([msgfmt, "--check", "-o", str(fresh), str(source)], check=True, capture_output=True)
    with open(fresh, "rb") as f:
        expected = gnu.GNUTranslations(f)._catalog
    with open(LOCALE / language / "LC_MESSAGES" / f"{domain}.mo", "rb") as f:
        assert gnu.GNUTranslations(f)._catalog == expected, f"{source}: run compilemessages (make messages)"


@pytest.mark.django_db
def test_the_scripts_catalogue_follows_the_chosen_language(client):
    zh = catalogue("zh_Hans", "djangojs")["Copied"]
    chinese = client.get("/jsi18n/").content.decode()
    assert json.dumps(zh) in chinese and "interpolate" in chinese
    client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    english = client.get("/jsi18n/").content.decode()
    assert json.dumps(zh) not in english and "interpolate" in english
