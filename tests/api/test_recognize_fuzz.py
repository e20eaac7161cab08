"""Property-based checks of POST /ocr/v1/recognize through the DRF test client: whatever the body
(any JSON value, any field types, base64 of damaged images, raw bytes under any content type,
multipart with any file), the answer is a 4xx in the error envelope, or the request passed every
check (here 503 "unavailable": no worker runs in these tests, so nothing is queued). Never a 500.

Deterministic (``derandomize``) and bounded, so the suite is stable and fast."""

from __future__ import annotations

import base64
import io
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import png_bytes, render_lines

URL = "/ocr/v1/recognize"
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore::UserWarning")]

INVOICE = png_bytes(render_lines(["价税合计 1280.00"]))
SEEDS = [
    INVOICE,
    png_bytes(render_lines(["发票"]), "JPEG"),
    png_bytes(render_lines(["税率"]), "WEBP"),
    png_bytes(render_lines(["金额"]), "GIF"),
    png_bytes(render_lines(["号码"]), "TIFF"),
    b"",
    b"%PDF-1.4\n",
]


def damaged(seed: bytes, edits) -> bytes:
    out = bytearray(seed)
    for where, value, cut in edits:
        if not out:
            break
        i = where % len(out)
        if cut:
            del out[i:]
        else:
            out[i] = value
    return bytes(out)


IMAGE_BYTES = st.one_of(
    st.binary(max_size=512),
    st.builds(
        damaged,
        st.sampled_from(SEEDS),
        st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255), st.booleans()), max_size=4),
    ),
)


def encodings(data: bytes):
    text = base64.b64encode(data).decode()
    return st.sampled_from(
        [
            text,
            f"data:image/png;base64,{text}",
            "\n".join(text[i : i + 76] for i in range(0, len(text), 76)),
            text.rstrip("="),
            text + "===",
            text.replace("+", "-").replace("/", "_"),
            f" {text} ",
            text[: len(text) // 2],
        ]
    )


BASE64 = st.one_of(
    IMAGE_BYTES.flatmap(encodings),
    st.text(max_size=64),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\n :,;", max_size=64),
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "image_base64": st.one_of(BASE64, JSON_VALUES),
        "wait": st.one_of(st.sampled_from([True, False, "true", "false", "maybe", "1", "0", "", None]), JSON_VALUES),
        "filename": st.one_of(st.text(max_size=300), JSON_VALUES),
        "image": JSON_VALUES,
    },
)


@pytest.fixture
def post(api_client_for, make_user, settings):
    settings.OCR_THROTTLE_PER_MINUTE = 0  # the fuzzer sends hundreds of requests a minute
    client = api_client_for(make_user("fuzzer"))

    def send(**kwargs):
        response = client.post(URL, **kwargs)
        status = response.status_code
        body = response.json() if response.get("Content-Type", "").startswith("application/json") else None
        assert status < 500 or (status == 503 and body["error"]["code"] == "unavailable"), (
            status,
            response.content[:300],
        )
        if 400 <= status < 500:
            assert body is not None and body["success"] is False, response.content[:300]
            assert body["error"]["code"] and body["error"]["message"], body
        return status

    return send


@FUZZ
@given(body=st.one_of(JSON_VALUES, FIELDS))
def test_any_json_body_gets_a_clean_answer(post, body):
    post(data=json.dumps(body), content_type="application/json")


@FUZZ
@given(fields=FIELDS, image_base64=BASE64)
def test_any_base64_image_gets_a_clean_answer(post, fields, image_base64):
    post(data=json.dumps({**fields, "image_base64": image_base64}), content_type="application/json")


@FUZZ
@given(
    raw=st.binary(max_size=512),
    content_type=st.sampled_from(
        [
            "application/json",
            "multipart/form-data; boundary=xyz",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
            "text/plain",
            "image/png",
            "application/octet-stream",
        ]
    ),
)
def test_any_raw_body_under_any_content_type_gets_a_clean_answer(post, raw, content_type):
    post(data=raw, content_type=content_type)


@FUZZ
@given(
    image=IMAGE_BYTES,
    name=st.text(max_size=300),
    extra=st.dictionaries(st.sampled_from(["wait", "filename", "image_base64"]), st.text(max_size=40), max_size=3),
)
def test_any_multipart_upload_gets_a_clean_answer(post, image, name, extra):
    upload = io.BytesIO(image)
    upload.name = name or "upload"
    post(data={"image": upload, **extra}, format="multipart")


def test_a_valid_image_passes_every_check(post):
    """The property above is not vacuous: a good image gets past validation (503: no worker here)."""
    assert post(data={"image_base64": base64.b64encode(INVOICE).decode()}, format="json") == 503
    assert post(data={"image_base64": "%%%"}, format="json") == 400
