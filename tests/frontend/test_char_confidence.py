"""Characters the recogniser was unsure of, marked inside their line in a real browser, without OCR:
an upload's answer handed to the page by Playwright, and the same job written into the database and
opened from the history. The line's text copies and selects unchanged."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import expect

from .conftest import log_in

pytestmark = pytest.mark.browser

PASSWORD = "pw-portal-chars-1"
# One low-confidence character (票) in a line; a line without chars; a corrected line whose chars
# still spell its old text (shown plain).
LINES = [
    {
        "text": "发票号码",
        "confidence": 0.7,
        "box": [0, 0, 60, 20],
        "chars": [
            {"text": "发", "confidence": 0.99},
            {"text": "票", "confidence": 0.42},
            {"text": "号", "confidence": 0.97},
            {"text": "码", "confidence": 0.95},
        ],
    },
    {"text": "金额合计", "confidence": 0.98, "box": [0, 30, 60, 50]},
    {
        "text": "开户银行",
        "confidence": 0.5,
        "box": [0, 60, 60, 80],
        "original_text": "开户很行",
        "corrected": True,
        "chars": [
            {"text": "开", "confidence": 0.9},
            {"text": "户", "confidence": 0.9},
            {"text": "很", "confidence": 0.1},
            {"text": "行", "confidence": 0.9},
        ],
    },
]
PLAIN = "发票号码\n金额合计\n开户银行"


def clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def succeeded_job(lines: list[dict], **fields) -> dict:
    """A job as the API answers it, for a page that is handed it instead of asking a worker."""
    job_id = str(uuid.uuid4())
    return {
        "success": True,
        "job_id": job_id,
        "status": "succeeded",
        "text": [line["text"] for line in lines],
        "lines": lines,
        "time_cost": 0.2,
        "model_version": "seeded@1",
        "cached": False,
        "width": 60,
        "height": 80,
        "owner": "erin",
        "created_at": None,
        "finished_at": None,
        "status_url": f"/ocr/v1/jobs/{job_id}",
        "image_url": None,
        "error": None,
        **fields,
    }


def assert_only_the_doubtful_character_is_marked(container) -> None:
    marks = container.locator("mark.char-low")
    expect(marks).to_have_count(1)
    expect(marks).to_have_text("票")
    expect(marks).to_have_attribute("title", "字符置信度：42%")
    expect(container.locator(".line-text")).to_have_text(PLAIN.splitlines())
    expect(container.locator(".low-note")).to_contain_text("波浪下划线")


def test_doubtful_characters_are_marked_and_the_text_copies_unchanged(
    live_server, django_user_model, new_page, artifacts
):
    from ocr_api.models import OcrJob

    erin = django_user_model.objects.create_user(username="erin", password=PASSWORD)
    OcrJob.objects.create(
        owner=erin,
        status=OcrJob.Status.SUCCEEDED,
        image_sha256="0" * 64,
        image_format="PNG",
        filename="chars.png",
        width=60,
        height=80,
        size_bytes=1,
        cache_key="seeded",
        model_label="seeded@1",
        lines=LINES,
        text_content=PLAIN,
    )
    page = new_page(live_server.url)
    log_in(page, live_server.url, "erin", PASSWORD)

    # An upload's result, handed to the page: "copy all" copies the plain text.
    page.route(
        re.compile(r"/ocr/v1/recognize$"),
        lambda route: route.fulfill(
            status=200, content_type="application/json", body=json.dumps(succeeded_job(LINES, filename="scan.png"))
        ),
    )
    page.set_input_files("#file-input", files=[{"name": "scan.png", "mimeType": "image/png", "buffer": b"\x89PNG"}])
    card = page.locator("#results .result-card")
    expect(card).to_have_attribute("data-state", "succeeded")
    assert_only_the_doubtful_character_is_marked(card)
    page.screenshot(path=artifacts / "portal-char-confidence-1280.png")
    page.click("#copy-all")
    assert clipboard(page) == PLAIN
    # Selecting the line by hand takes its text as it is, too.
    selected = page.evaluate("""() => {
      const range = document.createRange();
      range.selectNodeContents(document.querySelector("#results .line-text"));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      return getSelection().toString();
    }""")
    assert selected == "发票号码"

    # The same job from the history.
    page.click("a[data-tab=history]")
    page.locator("#history-list .history-item .link-btn").click()
    dialog = page.locator("#detail-dialog")
    assert_only_the_doubtful_character_is_marked(dialog)
    page.evaluate("navigator.clipboard.writeText('')")
    dialog.locator(".copy-one").click()
    assert clipboard(page) == PLAIN
    assert page.errors == []
