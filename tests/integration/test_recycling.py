"""A real OCR worker under workers.launcher is replaced after OCR_WORKER_MAX_TASKS tasks while
requests keep coming: no request fails, and the worker's name is announced the whole time."""

import threading
import time

import pytest
from django.conf import settings

from ocr_api.models import OcrJob
from tests.conftest import b64, png_bytes, render_lines
from workers.metrics import PREFIX
from workers.presence import live_workers

URL = "/ocr/v1/recognize"
pytestmark = [pytest.mark.integration]
TEXTS = [
    "开票日期二零二六年",
    "金额合计一千二百元",
    "纳税人识别号码九八",
    "上海市浦东新区世纪大道",
    "购买方名称明远科技",
    "销售方地址北京市海淀区",
]


def test_a_recycled_worker_is_replaced_without_a_gap(make_user, api_client_for, worker_factory, redis_server):
    client = api_client_for(make_user("erp"))
    worker = worker_factory(launcher=True, OCR_WORKER_MAX_TASKS="2")
    gaps: list[float] = []
    stop = threading.Event()

    def watch() -> None:  # the web answers 503 whenever no worker is announced
        while not stop.is_set():
            if worker.name not in live_workers(redis_server, settings.OCR_WORKER_HEARTBEAT_TTL_S):
                gaps.append(time.monotonic())
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        sent, answers = [], []
        deadline = time.monotonic() + 120
        # new lines (no cache hits) until the worker has been replaced twice
        while _count(redis_server, "ocr_worker_starts_total", worker.name) < 3:
            assert time.monotonic() < deadline, worker.log()
            sent.append(f"{TEXTS[len(sent) % len(TEXTS)]}{len(sent)}")
            response = client.post(URL, {"image_base64": b64(png_bytes(render_lines([sent[-1]])))}, format="json")
            assert response.status_code == 200, (response.content, worker.log())
            answers.append(response.json())
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join()
    assert [a["text"] for a in answers] == [[t] for t in sent]
    incarnations = {OcrJob.objects.get(pk=a["job_id"]).claimed_by for a in answers}
    assert len(incarnations) >= 2, incarnations  # more than one process served them
    assert _count(redis_server, "ocr_worker_recycles_total", worker.name) >= 2
    assert not gaps, f"the worker's name was missing {len(gaps)} times"
    assert worker.proc.poll() is None, "the launcher stays"
    log = worker.log()
    assert "retired pid" in log and "exited with 0" in log, log


def _count(client, name: str, worker: str) -> int:
    for labels, value in client.hgetall(f"{PREFIX}:c:{name}").items():
        if worker in labels.decode():
            return int(float(value))
    return 0
