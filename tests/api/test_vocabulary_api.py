"""GET/PUT /ocr/v1/vocabulary: a user's own words, checked like a request's hotwords."""

import pytest
from rest_framework.test import APIClient

from ocr_api.models import Vocabulary

URL = "/ocr/v1/vocabulary"
pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def client(api_client_for, alice):
    return api_client_for(alice)


def assert_error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]["message"]


def test_it_is_empty_before_the_first_save(client, settings):
    response = client.get(URL)
    assert response.status_code == 200
    assert response.json() == {
        "words": [],
        "updated_at": None,
        "max_words": settings.OCR_MAX_HOTWORDS,
        "max_word_chars": settings.OCR_HOTWORD_MAX_CHARS,
    }
    assert not Vocabulary.objects.exists()


def test_it_keeps_the_saved_words_cleaned_and_replaces_them_on_the_next_save(client, alice):
    words = ["上海明远科技有限公司", "  HT-2026   118 ", "", "发票号码", "上海明远科技有限公司"]
    saved = client.put(URL, {"words": words}, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["words"] == ["上海明远科技有限公司", "HT-2026 118", "发票号码"]
    assert saved.json()["updated_at"]
    assert client.get(URL).json()["words"] == ["上海明远科技有限公司", "HT-2026 118", "发票号码"]

    assert client.put(URL, {"words": ["金额合计"]}, format="json").status_code == 200
    assert client.get(URL).json()["words"] == ["金额合计"]
    assert client.put(URL, {"words": []}, format="json").json()["words"] == []
    assert Vocabulary.objects.get(owner=alice).words == []


def test_it_refuses_too_many_words_with_bad_hotwords_and_keeps_the_old_ones(client, settings):
    settings.OCR_MAX_HOTWORDS = 3
    assert client.put(URL, {"words": ["甲"]}, format="json").status_code == 200
    too_many = client.put(URL, {"words": ["甲", "乙", "丙", "丁"]}, format="json")
    message = assert_error(too_many, 400, "bad_hotwords")
    assert message == "words: 4 hotwords; the limit is 3."
    assert client.get(URL).json()["words"] == ["甲"]


def test_it_refuses_a_word_that_is_too_long_with_bad_hotwords(client, settings):
    settings.OCR_HOTWORD_MAX_CHARS = 5
    message = assert_error(client.put(URL, {"words": ["发票", "一二三四五六"]}, format="json"), 400, "bad_hotwords")
    assert "longer than 5 characters" in message
    assert not Vocabulary.objects.exists()


@pytest.mark.parametrize("body", [{}, {"words": None}, {"words": "发票"}, {"words": [{"x": 1}]}])
def test_it_refuses_words_that_are_not_a_list_of_strings_with_bad_hotwords(client, body):
    assert_error(client.put(URL, body, format="json"), 400, "bad_hotwords")


def test_it_refuses_a_body_that_is_not_an_object(client):
    assert_error(client.put(URL, ["发票"], format="json"), 400, "invalid")
    assert_error(client.generic("PUT", URL, "{not json", content_type="application/json"), 400, "malformed_request")


def test_each_user_sees_and_changes_only_their_own(client, make_user, api_client_for):
    bob = api_client_for(make_user("bob"))
    boss = api_client_for(make_user("boss", is_staff=True))
    client.put(URL, {"words": ["明远科技"]}, format="json")
    assert bob.get(URL).json()["words"] == []
    assert boss.get(URL).json()["words"] == []
    bob.put(URL, {"words": ["鲍勃的词"]}, format="json")
    assert client.get(URL).json()["words"] == ["明远科技"]
    assert bob.get(URL).json()["words"] == ["鲍勃的词"]


def test_it_requires_a_login_or_a_token():
    anonymous = APIClient()
    assert_error(anonymous.get(URL), 401, "not_authenticated")
    assert_error(anonymous.put(URL, {"words": ["x"]}, format="json"), 401, "not_authenticated")
    anonymous.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert_error(anonymous.get(URL), 401, "authentication_failed")
    assert not Vocabulary.objects.exists()


def test_a_session_needs_the_csrf_token_to_save(alice):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get(URL).status_code == 200
    assert_error(browser.put(URL, {"words": ["x"]}, format="json"), 403, "permission_denied")
    assert not Vocabulary.objects.exists()


def test_the_openapi_schema_documents_it(client):
    schema = client.get("/ocr/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    operations = schema["paths"]["/ocr/v1/vocabulary"]
    assert set(operations) >= {"get", "put"}
    assert "400" in operations["put"]["responses"] and "401" in operations["get"]["responses"]
