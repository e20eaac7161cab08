"""Latency and throughput of POST /ocr/v1/recognize on the running platform, against a plain
ONNX Runtime loop over the same images (the ceiling).

    .venv/bin/python -m bench.api_load --start            # starts a `make run` stack of its own
    .venv/bin/python -m bench.api_load --url http://127.0.0.1:8000 --token TOKEN

For single lines (one rendered invoice field) and for pages (eight fields), at 1, 8 and 32
concurrent clients (one keep-alive HTTP connection each), it sends images that no earlier run
sent (a random number in each, so the cache cannot answer: "uncached"), then the same images
again ("cached"), and prints p50, p95 and requests/s. Non-200 answers are counted as errors.

The ceiling is one process running the workers' own pipeline (decode, line finding, the same
recogniser and preprocessing) over the same uncached images, one image after another, with no
HTTP, queue or database, ONNX Runtime using every core (OCR_ORT_THREADS, 0 = all). The report
gives the platform's uncached throughput at 32 clients as a fraction of it.

With --start, the stack's settings come from the environment (e.g. OCR_BATCH_MAX_WAIT_MS,
OCR_WORKER_CONCURRENCY); the throttle is turned off (OCR_THROTTLE_PER_MINUTE=0) unless set.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import inspect
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
FONT = "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"
FIELDS = [
    "发票号码：{:08d}",
    "金额合计：¥{:,}.00",
    "纳税人识别号：9131{:014d}",
    "订单编号 {:010d}",
    "开票日期：2026年11月30日 第{:06d}号",
    "购买方名称：上海明远科技有限公司 {:04d}",
    "税额：{:,}.00 元",
    "备注：合同编号 HT-{:06d}",
]
PAGE_LINES = 8


# --- images ------------------------------------------------------------------------------------------
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT, size, index=2)


def _field(i: int, rng: random.Random) -> str:
    return FIELDS[i % len(FIELDS)].format(rng.randrange(10**3, 10**8))


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def line_image(i: int, rng: random.Random) -> bytes:
    """One field on a strip, with a random number no earlier run sent."""
    font = _font(30)
    text = _field(i, rng)
    img = Image.new("RGB", (int(font.getlength(text)) + 30, 56), "white")
    ImageDraw.Draw(img).text((15, 8), text, font=font, fill="black")
    return _png(img)


def page_image(i: int, rng: random.Random) -> bytes:
    """A page of PAGE_LINES fields, left-aligned like a form."""
    font = _font(28)
    texts = [_field(i + k, rng) for k in range(PAGE_LINES)]
    width = max(int(font.getlength(t)) for t in texts) + 80
    img = Image.new("RGB", (max(width, 640), 60 + 52 * PAGE_LINES), "white")
    draw = ImageDraw.Draw(img)
    for k, text in enumerate(texts):
        draw.text((40, 30 + 52 * k), text, font=font, fill="black")
    return _png(img)


# --- the stack ---------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Stack:
    url: str
    token: str
    var_dir: Path
    proc: subprocess.Popen | None = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_stack(extra_env: dict[str, str] | None = None, timeout: float = 240) -> Stack:
    """`scripts/run_platform.py` on free ports with a var dir of its own; returns once the banner
    (an OCR worker is ready) is printed."""
    var_dir = Path(tempfile.mkdtemp(prefix="ocr-bench-"))
    env = dict(os.environ)
    env.setdefault("OCR_THROTTLE_PER_MINUTE", "0")
    env.update(extra_env or {})
    web = free_port()
    env.update(
        OCR_VAR_DIR=str(var_dir),
        OCR_WEB_PORT=str(web),
        OCR_FLOWER_PORT=str(free_port()),
        OCR_REDIS_PORT=str(free_port()),
    )
    log = open(var_dir / "platform.out", "w+b")
    proc = subprocess.Popen(
        [sys.executable, "scripts/run_platform.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = (var_dir / "platform.out").read_text(errors="replace")
        for line in text.splitlines():
            if line.strip().startswith("API token:"):
                return Stack(f"http://127.0.0.1:{web}", line.split(":", 1)[1].strip(), var_dir, proc)
        if proc.poll() is not None:
            raise SystemExit(f"the platform exited:\n{text}")
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("the platform did not start in time")


# --- clients -----------------------------------------------------------------------------------------
class Client:
    """One keep-alive connection, as an application server talking to the API would hold."""

    def __init__(self, url: str, token: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes, path: str = "/ocr/v1/recognize") -> tuple[int, dict | None]:
        for attempt in (0, 1):  # a kept-alive connection the server closed meanwhile is opened again
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request("POST", path, body=body, headers=self.headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                try:
                    payload = json.loads(raw)
                except ValueError:
                    payload = None
                return resp.status, payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def body_of(image: bytes) -> bytes:
    return json.dumps({"image_base64": base64.b64encode(image).decode()}).encode()


@dataclass
class Result:
    latencies: list[float]
    wall: float
    errors: int
    cached: int

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(url: str, token: str, bodies: list[bytes], clients: int, headers: dict[str, str] | None = None) -> Result:
    """``clients`` keep-alive clients send ``bodies`` (``headers`` added to every request)."""
    latencies: list[float] = []
    errors = cached = 0
    lock = threading.Lock()
    todo = list(reversed(bodies))

    def worker() -> None:
        nonlocal errors, cached
        client = Client(url, token)
        client.headers.update(headers or {})
        try:
            while True:
                with lock:
                    if not todo:
                        return
                    body = todo.pop()
                started = time.perf_counter()
                try:
                    status, payload = client.post(body)
                except OSError:
                    status, payload = 0, None
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if status != 200 or not (payload or {}).get("success"):
                        errors += 1
                    elif payload.get("cached"):
                        cached += 1
        finally:
            client.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Result(latencies, time.perf_counter() - started, errors, cached)


# --- the ceiling -------------------------------------------------------------------------------------
class _DirectLines:
    """Stands in for the batcher: every crop straight through the recogniser, one call per line,
    decoded by the workers' own decoder (the beam and the language model where they use them)."""

    def __init__(self, model, decoder=None) -> None:
        self.model = model
        self.decoder = decoder

    def recognize(self, crops, request_id, timeout=None, deadline=None, hotwords=None):
        from engine.batcher import BatchedLine
        from engine.preprocess import prepare_line

        out = []
        for crop in crops:
            (res,) = self.model.recognize([prepare_line(crop, self.model.spec, False)], self.decoder)
            out.append(BatchedLine(res.text, res.confidence, self.model.label, 0, 1, 1))
        return out


def ceiling(images: list[bytes], var_dir: Path | None) -> dict[int, float]:
    """Images per second of one process running the workers' pipeline with no platform around it,
    with ONNX Runtime on one thread and on all cores (0)."""
    if var_dir is not None:
        os.environ["OCR_VAR_DIR"] = str(var_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ocrsite.settings.local")
    import django

    django.setup()
    from django.conf import settings

    from engine.inference import Recognizer
    from engine.pipeline import recognize_bytes
    from ocr_api.registry import active_model
    from workers import config, runtime

    version = active_model()
    limits = config.image_limits()
    rates = {}
    for threads in (1, 0):
        settings.OCR_ORT_THREADS = threads
        model = Recognizer(version.file_path, threads=threads, label=version.label)
        extra = {}
        if "reader" in inspect.signature(recognize_bytes).parameters and hasattr(runtime, "page_reader"):
            runtime.page_reader.cache_clear()
            extra["reader"] = runtime.page_reader()  # the page detector, when the workers use one
        direct = _DirectLines(model, runtime.line_decoder() if hasattr(runtime, "line_decoder") else None)
        for data in images[:3]:  # warm-up
            recognize_bytes(data, limits, direct, "warm", **extra)
        started = time.perf_counter()
        for i, data in enumerate(images):
            recognize_bytes(data, limits, direct, str(i), **extra)
        rates[threads] = len(images) / (time.perf_counter() - started)
    return rates


# --- the report --------------------------------------------------------------------------------------
def row(kind: str, clients: int, mode: str, res: Result) -> str:
    return (
        f"| {kind} | {clients} | {mode} | {res.quantile(0.5) * 1000:.1f} | {res.quantile(0.95) * 1000:.1f} | "
        f"{res.rate:.1f} | {res.errors} |"
    )


def requests_for(kind: str, clients: int, scale: float) -> int:
    base = {"lines": max(60, 6 * clients), "pages": max(12, 3 * clients)}[kind]
    return max(clients, int(base * scale))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", action="store_true", help="start a platform of its own (and stop it after)")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token")
    parser.add_argument("--clients", default="1,8,32")
    parser.add_argument("--kinds", default="lines,pages")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of requests")
    parser.add_argument("--no-ceiling", action="store_true")
    args = parser.parse_args()
    if not args.start and not args.token:
        parser.error("give --token (and --url) of a running platform, or --start")

    stack = (
        start_stack() if args.start else Stack(args.url, args.token, Path(os.environ.get("OCR_VAR_DIR", ROOT / "var")))
    )
    try:
        rng = random.Random(time.time_ns())
        make = {"lines": line_image, "pages": page_image}
        clients = [int(c) for c in args.clients.split(",")]
        kinds = args.kinds.split(",")
        settings_line = {
            k: os.environ[k]
            for k in sorted(os.environ)
            if k.startswith(("OCR_BATCH", "OCR_WORKER_C", "OCR_ORT", "OCR_WEB"))
        }
        print(f"platform {stack.url}; settings from the environment: {settings_line or 'defaults'}")
        for warm in range(4):  # model sessions, connections, first-request work
            run(stack.url, stack.token, [body_of(make[kinds[0]](warm, rng))], 1)
        print("| images | clients | cache | p50 ms | p95 ms | requests/s | errors |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        uncached_at: dict[tuple[str, int], Result] = {}
        samples: dict[str, list[bytes]] = {}
        for kind in kinds:
            for n_clients in clients:
                images = [make[kind](i, rng) for i in range(requests_for(kind, n_clients, args.scale))]
                samples.setdefault(kind, images)
                bodies = [body_of(img) for img in images]
                uncached = run(stack.url, stack.token, bodies, n_clients)
                uncached_at[(kind, n_clients)] = uncached
                print(row(kind, n_clients, "uncached", uncached), flush=True)
                cached = run(stack.url, stack.token, bodies, n_clients)
                print(row(kind, n_clients, "cached", cached), flush=True)
        if not args.no_ceiling:
            print()
            for kind in kinds:
                rates = ceiling(samples[kind], stack.var_dir if args.start else None)
                rate = max(rates.values())
                best = max(clients)
                platform = uncached_at[(kind, best)].rate
                print(
                    f"ceiling, {kind}: one process, no platform: {rates[1]:.1f} images/s with 1 ONNX Runtime "
                    f"thread, {rates[0]:.1f} with all cores; platform uncached at {best} clients: "
                    f"{platform:.1f} requests/s = {platform / rate:.0%} of the better one"
                )
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
