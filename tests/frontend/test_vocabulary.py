"""The vocabulary tab in a real browser, without OCR: the live Django server and Redis, and a worker
that announces itself but takes no job."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, PHONE, log_in, text_line_png

pytestmark = pytest.mark.browser

PASSWORD = "pw-portal-vocab-1"
TYPED = "上海明远科技有限公司\n  HT-2026   118 \n\n发票号码\n上海明远科技有限公司\n"
SAVED = ["上海明远科技有限公司", "HT-2026 118", "发票号码"]


@pytest.fixture
def idle_worker(redis_server):
    """A worker that says it is alive but never takes a job: uploads are queued and stay queued."""
    from workers.presence import WORKERS_KEY

    redis_server.zadd(WORKERS_KEY, {"idle@test": time.time() + 3600})


def test_a_user_saves_a_vocabulary_finds_it_after_a_reload_and_uploads_send_it(
    live_server, django_user_model, new_page, idle_worker, settings, artifacts
):
    from ocr_api.models import OcrJob, Vocabulary

    dora = django_user_model.objects.create_user(username="dora", password=PASSWORD)
    page = new_page(live_server.url, viewport=PHONE)
    log_in(page, live_server.url, "dora", PASSWORD)
    expect(page.locator("#vocabulary-hint")).to_be_hidden()  # nothing saved yet
    page.click("a[data-tab=vocabulary]")
    expect(page).to_have_url(re.compile(r"/vocabulary/$"))
    area = page.locator("#vocabulary-words")
    expect(area).to_be_enabled()
    expect(area).to_have_value("")
    expect(page.locator("#vocabulary-limits")).to_contain_text(f"最多 {settings.OCR_MAX_HOTWORDS} 个词语")

    area.fill(TYPED)
    expect(page.locator("#vocabulary-count")).to_have_text(
        "3 个词语 · 尚未保存"
    )  # counted as the server will keep them
    page.click("#vocabulary-save")
    expect(page.locator("#vocabulary-status")).to_have_text("已保存：3 个词语。")
    expect(area).to_have_value("\n".join(SAVED))  # as the server cleaned it
    assert Vocabulary.objects.get(owner=dora).words == SAVED
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    page.screenshot(path=artifacts / "portal-vocabulary-375.png", full_page=True)

    # Over the limit: the server refuses, the page says why in its words and the server's.
    settings.OCR_MAX_HOTWORDS = 3
    area.fill("\n".join([*SAVED, "开户银行"]))
    page.click("#vocabulary-save")
    status = page.locator("#vocabulary-status")
    expect(status).to_have_class(re.compile(r"\bis-error\b"))
    expect(status).to_contain_text("未保存：词库中的词语过多，或有词语过长。")
    expect(status).to_contain_text("服务器返回：words: 4 hotwords; the limit is 3.")
    assert Vocabulary.objects.get(owner=dora).words == SAVED

    page.reload()
    expect(area).to_have_value("\n".join(SAVED))
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=artifacts / "portal-vocabulary-1280.png", full_page=True)

    # Every upload carries the saved words as hotwords.
    page.click("a[data-tab=upload]")
    expect(page.locator("#vocabulary-hint")).to_have_text("每次上传都会附带您词库中的 3 个词语。 编辑词库")
    with page.expect_response(re.compile(r"/ocr/v1/recognize$")) as answer:
        page.set_input_files(
            "#file-input",
            files=[{"name": "line.png", "mimeType": "image/png", "buffer": text_line_png("上海明远科技有限公司")}],
        )
    assert answer.value.status == 202, answer.value.text()
    assert OcrJob.objects.get(pk=answer.value.json()["job_id"]).hotwords == SAVED

    # The hint's link opens the vocabulary in place.
    page.click("#vocabulary-hint a")
    expect(page).to_have_url(re.compile(r"/vocabulary/$"))
    expect(page.locator("#vocabulary-heading")).to_be_focused()
    assert page.errors == []
