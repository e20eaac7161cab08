"""The portal in a real browser against the live stack (Django, Redis, a Celery OCR worker)."""

from __future__ import annotations

import base64
import difflib
import re

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, PHONE, RESULT_TIMEOUT_MS, log_in, text_line_png

pytestmark = pytest.mark.browser

INVOICE_LINE = "发票号码：04412378 金额合计：1280.00"
DATE_LINE = "开票日期：2026年11月26日"
PASSWORD = "pw-portal-123"

# Drop or paste a file the way the browser hands it to the page.
_SEND_FILE_JS = """
([how, b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  if (how === "drop") {
    const zone = document.getElementById("dropzone");
    zone.dispatchEvent(new DragEvent("dragenter", { dataTransfer: transfer, bubbles: true }));
    zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  } else {
    document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: transfer, bubbles: true, cancelable: true }));
  }
}
"""


def send_file(page, how: str, data: bytes, name: str, mime: str) -> None:
    page.evaluate(_SEND_FILE_JS, [how, base64.b64encode(data).decode(), name, mime])


def card(page, name_pattern: str):
    name = page.locator(".file-name", has_text=re.compile(name_pattern))
    return page.locator("#results .result-card").filter(has=name)


def paste_image(page, data: bytes) -> None:
    """Put a PNG on the system clipboard and press Ctrl+V, as after taking a screenshot."""
    page.evaluate(
        """async (b64) => {
          const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
          const blob = new Blob([bytes], { type: "image/png" });
          await navigator.clipboard.write([new ClipboardItem({ "image/png": blob })]);
        }""",
        base64.b64encode(data).decode(),
    )
    page.locator("#upload-heading").focus()
    page.keyboard.press("Control+V")


def clipboard(page) -> str:
    return page.evaluate("navigator.clipboard.readText()")


def similar(a: str, b: str) -> float:
    squash = lambda s: re.sub(r"\s+", "", s).replace("：", ":")  # noqa: E731
    return difflib.SequenceMatcher(None, squash(a), squash(b)).ratio()


def test_it_recognises_uploads_copies_all_text_and_finds_them_in_history(live_stack, new_page, artifacts):
    live_stack.create_user("alice", PASSWORD)
    page = new_page(live_stack.url)
    log_in(page, live_stack.url, "alice", PASSWORD)
    expect(page.locator("#copy-all")).to_have_text("复制全部文字")  # Chinese by default
    # Record every status a card goes through.
    page.evaluate(
        """() => {
          window.seenStates = [];
          new MutationObserver((records) => records.forEach((r) => window.seenStates.push(r.target.dataset.state)))
            .observe(document.getElementById("results"), { subtree: true, attributeFilter: ["data-state"] });
        }"""
    )

    # Two files at once through the picker.
    page.set_input_files(
        "#file-input",
        files=[
            {"name": "invoice-line.png", "mimeType": "image/png", "buffer": text_line_png(INVOICE_LINE)},
            {"name": "invoice-date.png", "mimeType": "image/png", "buffer": text_line_png(DATE_LINE)},
        ],
    )
    result = card(page, r"^invoice-line\.png$")
    other = card(page, r"^invoice-date\.png$")
    for each in (result, other):
        expect(each).to_have_attribute("data-state", "succeeded", timeout=RESULT_TIMEOUT_MS)

    states = page.evaluate("window.seenStates")
    assert "uploading" in states and states[-1] == "succeeded", states
    lines = result.locator(".line-text").all_inner_texts()
    other_lines = other.locator(".line-text").all_inner_texts()
    assert lines and other_lines, "no recognised lines shown"
    assert similar("".join(lines), INVOICE_LINE) > 0.7, lines
    assert similar("".join(other_lines), DATE_LINE) > 0.7, other_lines
    expect(result.locator(".line-box")).to_have_count(len(lines))  # a box over the image per line
    expect(result.locator(".line-conf").first).to_contain_text("%")
    expect(result.locator(".meta")).to_contain_text("模型版本")

    page.click("#copy-all")
    shown = page.locator("#results .line-text").all_inner_texts()
    assert shown == lines + other_lines  # the cards keep the order the files were chosen in
    assert clipboard(page) == "\n".join(shown)

    page.evaluate("navigator.clipboard.writeText('')")
    other.locator(".copy-one").click()
    assert clipboard(page) == "\n".join(other_lines)

    page.set_viewport_size(PHONE)
    page.screenshot(path=artifacts / "portal-upload-375.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=artifacts / "portal-upload-1280.png", full_page=True)

    # History: the upload is there, with a thumbnail, the text, the model and the time.
    page.click("a[data-tab=history]")
    expect(page).to_have_url(re.compile(r"/history/$"))
    items = page.locator("#history-list .history-item")
    expect(items).to_have_count(2)
    item = items.filter(has_text="invoice-line.png")
    expect(item.locator(".excerpt")).to_contain_text(lines[0][:4])
    expect(item.locator(".history-meta")).to_contain_text("秒")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.history-item img.thumb')]"
        ".every((img) => img.complete && img.naturalWidth > 0)"
    )

    page.fill("#history-query", lines[0][:4])
    page.press("#history-query", "Enter")
    expect(page.locator("#history-summary")).to_contain_text("找到 1 条")
    expect(items).to_have_count(1)
    expect(page).to_have_url(re.compile(r"\?q="))

    page.fill("#history-query", "这段文字不存在")
    page.press("#history-query", "Enter")
    expect(page.locator("#history-summary")).to_contain_text("没有找到")
    expect(items).to_have_count(0)

    page.fill("#history-query", "")
    page.press("#history-query", "Enter")
    expect(items).to_have_count(2)
    page.set_viewport_size(PHONE)
    page.screenshot(path=artifacts / "portal-history-375.png", full_page=True)
    page.set_viewport_size(DESKTOP)
    page.screenshot(path=artifacts / "portal-history-1280.png", full_page=True)

    # Open it: the full result, from the API, in a dialog.
    item.get_by_role("button", name=re.compile("^查看")).click()
    dialog = page.locator("#detail-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator(".line-text")).to_have_text(lines)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.errors == []


def test_it_explains_what_is_wrong_with_bad_files(live_stack, new_page):
    live_stack.create_user("alice", PASSWORD)
    page = new_page(live_stack.url, viewport=PHONE)
    # Playwright turns on file-chooser interception asynchronously when the first listener
    # appears; listening from the start means no chooser can open before it is on.
    page.on("filechooser", lambda chooser: None)
    log_in(page, live_stack.url, "alice", PASSWORD)

    # The picker button works from the keyboard.
    page.focus("#choose-files")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    assert chooser.value.is_multiple()

    # Not an image at all: refused in the browser, never sent.
    send_file(page, "drop", b"Quarterly figures, see attachment.\n", "notes.txt", "text/plain")
    rejected = card(page, r"^notes\.txt$")
    expect(rejected).to_have_attribute("data-state", "rejected")
    expect(rejected.locator(".card-message")).to_contain_text("不是图片或 PDF 文件")

    # Over the size limit: refused in the browser too.
    page.evaluate(
        """() => {
          const limit = JSON.parse(document.getElementById("portal-config").textContent).maxUploadBytes;
          const transfer = new DataTransfer();
          transfer.items.add(new File([new Uint8Array(limit + 1)], "huge-scan.png", { type: "image/png" }));
          document.getElementById("dropzone").dispatchEvent(
            new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }"""
    )
    huge = card(page, r"^huge-scan\.png$")
    expect(huge).to_have_attribute("data-state", "rejected")
    expect(huge.locator(".card-message")).to_contain_text("超过")

    # Looks like an image, is not: the API says why and the page shows it.
    send_file(page, "paste", b"this is not a PNG at all", "fake.png", "image/png")
    fake = card(page, r"^pasted-.*\.png$")
    expect(fake).to_have_attribute("data-state", "failed", timeout=RESULT_TIMEOUT_MS)
    message = fake.locator(".card-message")
    expect(message).to_contain_text("文件不是有效的图片")
    expect(message).to_contain_text("服务器返回")
    expect(page.locator("#copy-all")).to_be_disabled()
    assert page.errors == []


def test_each_user_sees_only_their_own_uploads(live_stack, new_page):
    live_stack.create_user("alice", PASSWORD)
    live_stack.create_user("bob", PASSWORD)
    live_stack.create_user("boss", PASSWORD, is_staff=True)

    alice = new_page(live_stack.url)
    log_in(alice, live_stack.url, "alice", PASSWORD)
    paste_image(alice, text_line_png("合同编号：HT-2026-118"))
    pasted = card(alice, r"^pasted-.*\.png$")
    expect(pasted).to_have_attribute("data-state", "succeeded", timeout=RESULT_TIMEOUT_MS)
    image_url = alice.evaluate("async () => (await (await fetch('/ocr/v1/jobs')).json()).results[0].image_url")

    bob = new_page(live_stack.url)
    log_in(bob, live_stack.url, "bob", PASSWORD)
    bob.goto(f"{live_stack.url}/history/")
    expect(bob.locator("#history-summary")).to_contain_text("还没有上传记录")
    expect(bob.locator("#history-list .history-item")).to_have_count(0)
    assert bob.request.get(f"{live_stack.url}{image_url}").status == 404

    boss = new_page(live_stack.url)
    log_in(boss, live_stack.url, "boss", PASSWORD)
    boss.goto(f"{live_stack.url}/history/")
    expect(boss.locator("#history-list .history-item")).to_have_count(1)
    expect(boss.locator(".history-item .owner")).to_contain_text("alice")

    # Alice deletes it, after confirming.
    alice.click("a[data-tab=history]")
    items = alice.locator("#history-list .history-item")
    expect(items).to_have_count(1)
    alice.once("dialog", lambda dialog: dialog.accept())
    items.first.get_by_role("button", name=re.compile("^删除")).click()
    expect(items).to_have_count(0)
    expect(alice.locator("#history-summary")).to_contain_text("已删除")
    # Log out from the header.
    bob.get_by_test_id("logout").click()
    expect(bob).to_have_url(re.compile(r"/login/\?logged_out=1$"))
    expect(bob.locator(".alert-info")).to_have_text("您已退出登录。")
    for page in (alice, bob, boss):
        assert page.errors == []


def test_a_user_fixes_a_recognised_line_and_it_becomes_training_data(live_stack, new_page):
    from ocr_api.models import LineCorrection

    live_stack.create_user("carol", PASSWORD)
    page = new_page(live_stack.url)
    log_in(page, live_stack.url, "carol", PASSWORD)
    page.set_input_files(
        "#file-input", files=[{"name": "fix.png", "mimeType": "image/png", "buffer": text_line_png(DATE_LINE)}]
    )
    result = card(page, r"^fix\.png$")
    expect(result).to_have_attribute("data-state", "succeeded", timeout=RESULT_TIMEOUT_MS)
    result.locator(".fix-btn").first.click()
    field = result.locator(".fix-input")
    expect(field).to_be_focused()
    field.fill("开票日期：2026年12月01日")
    field.press("Enter")
    expect(result.locator(".line-text").first).to_have_text("开票日期：2026年12月01日")
    expect(result.locator(".fix-done")).to_be_visible()
    correction = LineCorrection.objects.get()
    assert correction.corrected_text == "开票日期：2026年12月01日" and correction.line_index == 0
    page.click("#copy-all")
    assert clipboard(page).splitlines()[0] == "开票日期：2026年12月01日"
    assert page.errors == []
