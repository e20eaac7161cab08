"""Checks a running Docker Compose stack (docker/compose.yaml) from outside, as a client and an
operator would: health, recognition, jobs spread over the OCR worker containers, Flower, the
metrics, and an OCR worker container killed mid-run losing no job.

    docker compose -f docker/compose.yaml --env-file docker/.env up -d --scale ocr-worker=2
    .venv/bin/python -m bench.compose_check --token STAFF_TOKEN --flower-password PW \\
        --kill "docker kill docker-ocr-worker-1"

The web answers as behind the TLS proxy the production settings expect (X-Forwarded-Proto).
"""

from __future__ import annotations

import argparse
import base64
import random
import subprocess
import sys
import time

from bench import api_load
from bench.cluster_run import http


def call(args, method: str, path: str, body: dict | None = None, base: str | None = None, auth: str = "") -> tuple:
    return http(method, path, args.token, body, base=base or args.url, auth=auth)


def submit(args, rng: random.Random, count: int, pages: bool = False) -> list[str]:
    make = api_load.page_image if pages else api_load.line_image
    ids = []
    for _ in range(count):
        data = base64.b64encode(make(rng.randrange(10**9), rng)).decode()
        status, body = call(args, "POST", "/ocr/v1/recognize", {"image_base64": data, "wait": False})
        assert status in (200, 202), (status, body)
        ids.append(body["job_id"])
    return ids


def wait_jobs(args, ids: list[str], timeout: float = 240) -> tuple[dict[str, str], float]:
    started, states = time.monotonic(), {}
    while time.monotonic() - started < timeout:
        states = {i: call(args, "GET", f"/ocr/v1/jobs/{i}")[1]["status"] for i in ids}
        if all(s in ("succeeded", "failed") for s in states.values()):
            break
        time.sleep(0.5)
    return states, time.monotonic() - started


def flower_totals(args) -> dict[str, int]:
    auth = "Basic " + base64.b64encode(f"admin:{args.flower_password}".encode()).decode()
    status, workers = call(args, "GET", "/api/workers?refresh=1", base=args.flower, auth=auth)
    assert status == 200, (status, workers)
    task = "ocr_api.recognition.recognize"
    return {name: info.get("stats", {}).get("total", {}).get(task, 0) for name, info in workers.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://localhost:8000")
    parser.add_argument("--flower", default="http://localhost:5555")
    parser.add_argument("--token", required=True)
    parser.add_argument("--flower-password", required=True)
    parser.add_argument("--metrics-token", help="OCR_METRICS_TOKEN (default: the staff token reads /metrics)")
    parser.add_argument("--kill", help="a command that kills one OCR worker container")
    args = parser.parse_args()
    rng = random.Random(time.time_ns())
    print("health:", call(args, "GET", "/ocr/v1/health")[0])
    before = flower_totals(args)
    states, took = wait_jobs(args, submit(args, rng, 24))
    after = flower_totals(args)
    spread = {w: after.get(w, 0) - before.get(w, 0) for w in after}
    print(
        f"24 new lines: {sum(s == 'succeeded' for s in states.values())} succeeded in {took:.1f} s; by worker {spread}"
    )
    status, text = call(args, "GET", "/metrics", auth=f"Bearer {args.metrics_token}" if args.metrics_token else "")
    print("metrics:", status, [line for line in text.splitlines() if line.startswith("ocr_worker_model_info")])
    if args.kill:
        ids = submit(args, rng, 16, pages=True)
        time.sleep(1.5)
        subprocess.run(args.kill, shell=True, check=True)
        states, took = wait_jobs(args, ids)
        lost = sum(s not in ("succeeded", "failed") for s in states.values())
        done = sum(s == "succeeded" for s in states.values())
        print(
            f"16 pages, one OCR worker container killed 1.5 s in: {done} succeeded, {lost} lost, all done after {took:.1f} s"
        )
        return 1 if lost or done != len(ids) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
