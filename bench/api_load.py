"""End-to-end latency and throughput of POST /ocr/v1/recognize against a running platform.

Start the platform (`make run`), then:

    .venv/bin/python bench/api_load.py --url http://127.0.0.1:8000 --token TOKEN [--clients 8] [--requests 160]

Each request carries a distinct rendered invoice line (so the cache never answers), then the
same images are sent again (all cache hits). Prints p50/p95 latency and requests/s for both.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
import statistics
import threading
import time
import urllib.request

from PIL import Image, ImageDraw, ImageFont

FIELDS = ["发票号码：{:08d}", "金额合计：¥{:,}.00", "纳税人识别号：9131{:014d}", "订单编号 {:010d}"]


def image(i: int, rng: random.Random) -> str:
    """A line no earlier run sent (a random number in it), so the cache cannot answer it."""
    font = ImageFont.truetype("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 30, index=2)
    text = FIELDS[i % len(FIELDS)].format(rng.randrange(10**7, 10**8))
    img = Image.new("RGB", (int(font.getlength(text)) + 30, 56), "white")
    ImageDraw.Draw(img).text((15, 8), text, font=font, fill="black")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def run(url: str, token: str, payloads: list[str], clients: int) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    queue = list(enumerate(payloads))

    def client() -> None:
        nonlocal failures
        while True:
            with lock:
                if not queue:
                    return
                _, payload = queue.pop()
            body = json.dumps({"image_base64": payload}).encode()
            req = urllib.request.Request(f"{url}/ocr/v1/recognize", data=body, headers={
                "Authorization": f"Token {token}", "Content-Type": "application/json"})
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(req, timeout=120) as resp:
                    ok = resp.status == 200 and json.loads(resp.read())["success"]
            except Exception:  # noqa: BLE001
                ok = False
            with lock:
                latencies.append(time.perf_counter() - started)
                failures += not ok

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - started, failures


def report(name: str, latencies: list[float], wall: float, failures: int) -> None:
    q = statistics.quantiles(latencies, n=20)
    print(f"{name:<9} {len(latencies)} requests, {failures} failed: p50 {statistics.median(latencies) * 1000:7.1f} ms, "
          f"p95 {q[18] * 1000:7.1f} ms, {len(latencies) / wall:6.1f} requests/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=160)
    args = parser.parse_args()
    rng = random.Random(time.time_ns())
    payloads = [image(i, rng) for i in range(args.requests)]
    report("uncached", *run(args.url, args.token, payloads, args.clients))
    report("cached", *run(args.url, args.token, payloads, args.clients))


if __name__ == "__main__":
    main()
