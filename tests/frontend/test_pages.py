"""The portal's pages through Django's test client: access, language, what the scripts receive."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

FRONTEND = Path(__file__).resolve().parents[2] / "frontend"
PASSWORD = "pw-portal-123"


@pytest.fixture
def alice_client(client, django_user_model):
    django_user_model.objects.create_user(username="alice", password=PASSWORD)
    assert client.login(username="alice", password=PASSWORD)
    return client


def json_blob(html: str, element_id: str):
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html, re.S)
    assert match, f"no #{element_id} in the page"
    return json.loads(match.group(1))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/", "/history/", "/vocabulary/"])
def test_it_sends_visitors_who_are_not_logged_in_to_the_login_page(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/login/?next={path}"


@pytest.mark.django_db
def test_it_speaks_chinese_by_default(client):
    html = client.get("/login/").content.decode()
    assert '<html lang="zh-hans">' in html
    assert ">登录</button>" in html and "Log in" not in html
    html = client.get("/login/", HTTP_ACCEPT_LANGUAGE="fr").content.decode()  # a language the portal lacks
    assert '<html lang="zh-hans">' in html and ">登录</button>" in html


@pytest.mark.django_db
def test_it_speaks_english_when_the_user_picks_it(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302
    html = client.get("/login/").content.decode()
    assert '<html lang="en">' in html
    assert "Log in to upload" in html and "登录" not in html.split("<main", 1)[1]


@pytest.mark.django_db
def test_it_logs_in_and_out(client, django_user_model):
    django_user_model.objects.create_user(username="alice", password=PASSWORD)
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    assert client.get("/logout/").status_code == 405  # logging out takes a POST
    response = client.post("/logout/")
    assert response.status_code == 302 and response["Location"] == "/login/?logged_out=1"
    assert "您已退出登录。" in client.get(response["Location"]).content.decode()
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_a_wrong_password_gets_a_clear_message(client, django_user_model):
    django_user_model.objects.create_user(username="alice", password=PASSWORD)
    response = client.post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "用户名或密码不正确，请重试。" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "tab"), [("/", "upload"), ("/history/", "history"), ("/vocabulary/", "vocabulary")])
def test_the_portal_hands_its_scripts_the_strings_and_the_api_address(alice_client, path, tab):
    html = alice_client.get(path).content.decode()
    catalogue, module = html.index('<script src="/jsi18n/"></script>'), html.index('<script type="module"')
    assert catalogue < module  # the strings are there before the scripts run
    config = json_blob(html, "portal-config")
    assert config["apiRoot"] == "/ocr/v1/"
    assert config["maxUploadBytes"] == settings.OCR_MAX_IMAGE_BYTES
    assert config["activeTab"] == tab
    assert config["isStaff"] is False


def test_everything_the_pages_load_is_served_from_this_site():
    sources = [p.read_text() for p in (FRONTEND / "templates").rglob("*.html")]
    for text in sources:
        assert not re.search(r"""(src|href)=["'](https?:)?//""", text), "the portal loads nothing from other sites"
        for asset in re.findall(r"""\{%\s*static\s+["']([^"']+)["']""", text):
            assert finders.find(asset), f"missing static file {asset}"
    for script in (FRONTEND / "static" / "frontend" / "js").glob("*.js"):
        for module in re.findall(r"""from\s+["'](\.[^"']+)["']""", script.read_text()):
            assert (script.parent / module).resolve().exists(), f"{script.name} imports missing {module}"
