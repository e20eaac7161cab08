"""A PDF through the portal: its pages come back under their page numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.workers.test_pdf import scanned_pdf

from .conftest import RESULT_TIMEOUT_MS, log_in

pytestmark = pytest.mark.browser

PASSWORD = "pw-portal-pdf-1"


def upload_pdf(live_stack, new_page, user: str, name: str, pages: list[list[str]]):
    """Log a new user in, drop a scanned PDF of ``pages`` on the portal and wait for its result:
    (the browser page, the result card)."""
    live_stack.create_user(user, PASSWORD)
    page = new_page(live_stack.url)
    log_in(page, live_stack.url, user, PASSWORD)
    pdf = scanned_pdf(pages)
    page.set_input_files("#file-input", files=[{"name": name, "mimeType": "application/pdf", "buffer": pdf}])
    result = page.locator("#results .result-card")
    expect(result).to_have_attribute("data-state", "succeeded", timeout=RESULT_TIMEOUT_MS)
    return page, result


def test_a_two_page_pdf_is_shown_page_by_page(live_stack, new_page):
    _, result = upload_pdf(
        live_stack, new_page, "paula", "invoice.pdf", [["第一页 增值税专用发票"], ["第二页 开户银行招商银行"]]
    )
    expect(result.locator(".page-head")).to_have_text(["第 1 页", "第 2 页"])
    texts = [t.replace(" ", "") for t in result.locator(".line-text").all_inner_texts()]
    assert texts == ["第一页增值税专用发票", "第二页开户银行招商银行"]


def test_the_searchable_pdf_downloads_from_the_result_and_reads_back_as_its_text(live_stack, new_page):
    """The portal's download link: a real browser saves the searchable PDF, and poppler's pdftotext
    reads the recognised text back out of it, page by page."""
    from tests.workers.test_exports import _pdftotext

    pages = [["第一页 增值税专用发票"], ["第二页 开户银行招商银行"]]
    page, result = upload_pdf(live_stack, new_page, "petra", "invoice.pdf", pages)
    expect(result.locator(".download-link")).to_have_count(5)
    with page.expect_download() as download_info:
        result.locator(".download-link[data-format=pdf]").click()
    download = download_info.value
    assert download.suggested_filename == "invoice.pdf"
    saved = Path(download.path()).read_bytes()
    pages = _pdftotext(saved, "-raw").split("\f")
    texts = [t.replace(" ", "") for t in result.locator(".line-text").all_inner_texts()]
    assert [p.replace(" ", "").replace("\n", "") for p in pages if p.strip()] == texts


def test_a_pdfs_pages_are_shown_with_their_lines_drawn_over_them(live_stack, new_page):
    """Each page of the PDF as the job read it (GET .../pages/<n>), its lines' polygons over it;
    pointing at a line of text lights up its polygon on its own page."""
    sheets = [["第一页 增值税专用发票", "购买方名称上海明远科技有限公司"], ["第二页 开户银行招商银行"]]
    page, result = upload_pdf(live_stack, new_page, "pia", "two.pdf", sheets)
    pages = result.locator("figure.preview[data-page]")
    expect(pages).to_have_count(2)
    expect(pages.nth(0).locator(".line-box")).to_have_count(2)
    expect(pages.nth(1).locator(".line-box")).to_have_count(1)
    page.wait_for_function(
        "() => [...document.querySelectorAll('figure.preview[data-page] img')].every(i => i.complete && i.naturalWidth > 1000)"
    )
    viewbox = pages.nth(0).locator("svg.box-layer").get_attribute("viewBox")
    natural = pages.nth(0).locator("img").evaluate("i => [i.naturalWidth, i.naturalHeight]")
    assert [int(v) for v in viewbox.split()[2:]] == natural  # lines drawn in the page's own pixels
    assert abs(natural[0] - 1240) <= 1 and abs(natural[1] - 1754) <= 1  # A4 at the 150 dpi it was read at
    second_line = result.locator("li.line").nth(1)
    second_line.hover()
    expect(pages.nth(0).locator(".line-box.is-active")).to_have_count(1)
    expect(pages.nth(0).locator(".line-box").nth(1)).to_have_class(re.compile(r"is-active"))
    result.locator("h4").first.hover()
    expect(pages.nth(0).locator(".line-box.is-active")).to_have_count(0)
