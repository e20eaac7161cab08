"""Staff's models tab in a real browser: a dataset is adapted and the served model distilled from
the page (the jobs are queued on the training queue), a candidate's report is shown beside the
active model's, the gate refuses it, and promoting it anyway takes a written reason that lands in
the audit log."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from .conftest import DESKTOP, PHONE, log_in

pytestmark = pytest.mark.browser

PASSWORD = "pw-portal-models-1"


def _model_with_report(tmp_path, name: str, **suite):
    from ocr_api.models import ModelVersion
    from ocr_api.registry import register_model
    from tests.api.test_lifecycle_api import _copy_model

    version = register_model(_copy_model(tmp_path, name))
    ModelVersion.objects.filter(pk=version.pk).update(report={"suite": suite})
    version.refresh_from_db()
    return version


def test_staff_adapt_a_dataset_compare_a_model_and_promote_it_only_with_a_reason(
    live_server, django_user_model, new_page, tmp_path, redis_server, artifacts, monkeypatch
):
    from ocr_api import queues
    from ocr_api.models import Dataset, DistillJob, ModelVersion, PromotionEvent
    from ocr_api.registry import promote

    sent = []
    monkeypatch.setattr(queues, "send", lambda task, job_id: sent.append((task, job_id)))
    admin = django_user_model.objects.create_user(username="ada", password=PASSWORD, is_staff=True)
    django_user_model.objects.create_user(username="bob", password=PASSWORD)
    report = {"duplicates": [{"line": "b.png", "same_as": "a.png"}], "skipped": [], "unproducible": []}
    dataset = Dataset.objects.create(
        name="receipts", source="jobs", path=str(tmp_path), lines=300, report=report, created_by=admin
    )
    active = _model_with_report(tmp_path, "served", clean=99.0, photo=94.6)
    promote(active)
    candidate = _model_with_report(tmp_path, "adapted", clean=99.2, photo=93.9)

    page = new_page(live_server.url, viewport=DESKTOP)
    log_in(page, live_server.url, "ada", PASSWORD)
    page.click("a[data-tab=models]")
    expect(page).to_have_url(re.compile(r"/models/$"))
    expect(page.locator("#adapt-dataset option")).to_have_text("receipts (300 行, 已剔除 1 行重复)")
    page.click("#adapt-form button[type=submit]")
    expect(page.locator("#adapt-status")).to_contain_text("适配任务")
    job = DistillJob.objects.get()
    assert (job.kind, job.params["dataset"], job.params["student"]) == ("adapt", dataset.pk, "active")
    assert (queues.TRAIN, job.pk) in sent
    expect(page.locator(f"#training-jobs [data-job-id='{job.pk}']")).to_contain_text("排队中")

    # a warm-started distillation of the served model, with the steps and lines chosen on the page
    page.fill("#distill-steps", "300")
    page.fill("#distill-lines", "64")
    page.click("#distill-form button[type=submit]")
    expect(page.locator("#distill-status")).to_contain_text("蒸馏任务")
    warm = DistillJob.objects.exclude(pk=job.pk).get()
    assert warm.kind == "distill" and warm.params["warm_start"] is True
    assert (warm.params["steps"], warm.params["cache_lines"], warm.params["student"]) == (300, 64, "ppocrv6-tiny")
    assert (queues.TRAIN, warm.pk) in sent
    expect(page.locator(f"#training-jobs [data-job-id='{warm.pk}']")).to_contain_text("distill")
    page.fill("#distill-steps", "0")  # the browser refuses it before the API would
    page.click("#distill-form button[type=submit]")
    assert DistillJob.objects.count() == 2

    item = page.locator(f"#model-list [data-model-id='{candidate.pk}']")
    item.get_by_role("button", name="与当前模型对比").click()
    worse = item.locator(".report-table tr.is-worse")
    expect(worse).to_have_count(1)
    expect(worse).to_contain_text("photo")
    expect(worse).to_contain_text("-0.70")
    expect(item.locator(".verdict.is-error")).to_contain_text("photo -0.70")
    item.get_by_role("button", name="发布", exact=True).click()
    expect(item.locator(".form-status")).to_contain_text("未通过发布门槛")
    assert ModelVersion.objects.get(is_active=True) == active
    item.get_by_role("button", name="仍然发布").click()
    expect(item.locator(".form-status")).to_have_text("请先写明理由。")
    item.locator(".override-reason").fill("the customer's receipts need it")
    item.get_by_role("button", name="仍然发布").click()
    expect(page.locator(f"#model-list [data-model-id='{candidate.pk}'] .badge")).to_have_text("当前")
    assert ModelVersion.objects.get(is_active=True) == candidate
    refused, promoted = PromotionEvent.objects.order_by("pk")
    assert (refused.action, refused.version, refused.user) == ("refused", candidate, admin)
    assert (promoted.action, promoted.overridden, promoted.reason) == (
        "promote",
        True,
        "the customer's receipts need it",
    )
    page.screenshot(path=artifacts / "portal-models-1280.png", full_page=True)

    phone = new_page(live_server.url, viewport=PHONE)
    log_in(phone, live_server.url, "ada", PASSWORD)
    phone.goto(f"{live_server.url}/models/")
    expect(phone.locator("#model-list .model-item")).to_have_count(ModelVersion.objects.count())
    assert phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll

    # members have no models tab, and its address is refused
    member = new_page(live_server.url, viewport=DESKTOP)
    log_in(member, live_server.url, "bob", PASSWORD)
    expect(member.locator("a[data-tab=models]")).to_have_count(0)
    assert member.goto(f"{live_server.url}/models/").status == 403
