"""History pages in a real browser, over jobs written straight into the database
(no OCR needed): pagination, search, failed jobs and low-confidence lines."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import PHONE, log_in, text_line_png

pytestmark = pytest.mark.browser

PASSWORD = "pw-portal-123"


def seed_jobs(owner, count: int) -> None:
    import hashlib

    from ocr_api.images import store
    from ocr_api.models import OcrJob

    image = text_line_png("样例")
    common = dict(
        owner=owner,
        image_name=store(image, "PNG"),
        image_sha256=hashlib.sha256(image).hexdigest(),
        image_format="PNG",
        width=120,
        height=90,
        size_bytes=len(image),
        cache_key="seeded",
        model_label="seeded-model@1",
        time_cost=0.25,
    )
    for i in range(count):
        lines = [
            {"text": f"发票第{i:02d}号", "confidence": 0.97, "box": [10, 10, 100, 40]},
            {"text": "金额模糊", "confidence": 0.55, "box": [10, 50, 80, 80]},
        ]
        OcrJob.objects.create(
            **common,
            filename=f"scan-{i:02d}.png",
            status=OcrJob.Status.SUCCEEDED,
            lines=lines,
            text_content="\n".join(line["text"] for line in lines),
        )
    OcrJob.objects.create(
        **common,
        filename="broken.png",
        status=OcrJob.Status.FAILED,
        error_code="truncated_image",
        error_message="The image data is truncated or corrupt.",
    )


def test_it_pages_searches_and_flags_low_confidence_lines(live_server, django_user_model, new_page, artifacts):
    carol = django_user_model.objects.create_user(username="carol", password=PASSWORD)
    seed_jobs(carol, 24)  # 25 jobs: two pages of 20
    page = new_page(live_server.url, viewport=PHONE)
    log_in(page, live_server.url, "carol", PASSWORD)
    page.goto("/history/")

    items = page.locator("#history-list .history-item")
    expect(items).to_have_count(20)
    expect(page.locator("#history-summary")).to_contain_text("共 25 条记录")
    expect(page.locator("#page-label")).to_have_text("第 1 / 2 页")
    expect(page.locator("[data-page=prev]")).to_be_disabled()
    failed = items.filter(has_text="broken.png")
    expect(failed.locator(".status")).to_have_text("失败")
    expect(failed.locator(".excerpt")).to_contain_text("图片数据不完整或已损坏")
    page.screenshot(path=artifacts / "portal-history-pages-375.png", full_page=True)

    page.click("[data-page=next]")
    expect(items).to_have_count(5)
    expect(page).to_have_url(re.compile(r"/history/\?page=2$"))
    expect(page.locator("[data-page=next]")).to_be_disabled()
    page.reload()  # the address keeps the page
    expect(items).to_have_count(5)

    page.fill("#history-query", "第07号")
    page.press("#history-query", "Enter")
    expect(items).to_have_count(1)
    expect(page.locator("#history-pages")).to_be_hidden()
    items.first.locator(".link-btn").click()

    dialog = page.locator("#detail-dialog")
    expect(dialog.locator(".line.is-low")).to_have_count(1)
    expect(dialog.locator(".line.is-low")).to_contain_text("低置信度")
    expect(dialog.locator(".line-box")).to_have_count(2)
    expect(dialog.locator(".line-box.is-low")).to_have_count(1)
    expect(dialog.locator(".low-note")).to_be_visible()
    page.screenshot(path=artifacts / "portal-detail-375.png")

    # Delete from the detail view; the confirmation can be refused.
    page.once("dialog", lambda confirm: confirm.dismiss())
    dialog.locator("[data-action=delete]").click()
    expect(dialog).to_be_visible()
    page.once("dialog", lambda confirm: confirm.accept())
    dialog.locator("[data-action=delete]").click()
    expect(dialog).to_be_hidden()
    expect(items).to_have_count(0)

    # English on request: the page and the scripts' strings both switch.
    page.click(".lang-btn[value=en]")
    expect(page.locator("#history-heading")).to_have_text("History")
    expect(page.locator("#history-summary")).to_contain_text("Nothing found containing “第07号”")
    assert page.errors == []
