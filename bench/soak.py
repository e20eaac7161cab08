"""Soak: 32 clients for 60 s against the platform, mixing new lines, repeated lines (cache hits),
pages and bad inputs; counts the errors that are not the client's fault and the memory growth
of the web and OCR worker processes after warm-up.

    .venv/bin/python -m bench.soak --start                 # a `make run` stack of its own
    .venv/bin/python -m bench.soak --url URL --token TOKEN --var-dir var

Every answer is classified:
- a good image answered 200 (or 202: still running at the server's wait limit) is fine;
- a bad input answered 4xx is fine (it is the client's fault);
- anything else is a server error: a 5xx, a 4xx to a good image, a dropped connection, a
  malformed answer.
RSS is read from /proc for the processes under the platform's supervisord (gunicorn processes
together; the OCR worker) once warm-up (the first --warmup seconds) is over and at the end.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import struct
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

from bench import api_load


# --- bad inputs: (name, body bytes, headers override) ---------------------------------------------
def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with almost no pixel data (a decompression bomb
    shape: the pixel cap must refuse it before decoding)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


def bad_inputs(sample_png: bytes) -> list[tuple[str, bytes, dict]]:
    def js(obj) -> bytes:
        return json.dumps(obj).encode()

    b64 = base64.b64encode
    tiny = api_load._png(api_load.Image.new("RGB", (1, 1), "white"))
    return [
        ("empty body", b"", {}),
        ("malformed JSON", b'{"image_base64": "abc', {}),
        ("bad base64", js({"image_base64": "%%% not base64 %%%"}), {}),
        ("base64 of text", js({"image_base64": b64(b"hello, no pixels here").decode()}), {}),
        ("zero bytes", js({"image_base64": ""}), {}),
        ("truncated PNG", js({"image_base64": b64(sample_png[: len(sample_png) // 2]).decode()}), {}),
        ("header-only PNG", js({"image_base64": b64(sample_png[:33]).decode()}), {}),
        ("wrong JSON type", js({"image_base64": 12345}), {}),
        ("list for image", js({"image_base64": ["a", "b"]}), {}),
        ("wait not a boolean", js({"image_base64": b64(sample_png).decode(), "wait": "maybe"}), {}),
        ("1x1 image", js({"image_base64": b64(tiny).decode()}), {}),
        ("SVG", js({"image_base64": b64(b'<svg xmlns="http://www.w3.org/2000/svg"/>').decode()}), {}),
        ("30000x30000 PNG", js({"image_base64": b64(_png_claiming(30000, 30000)).decode()}), {}),
        ("no token", js({"image_base64": b64(sample_png).decode()}), {"Authorization": None}),
        ("bad token", js({"image_base64": b64(sample_png).decode()}), {"Authorization": "Token not-a-token"}),
    ]


# --- process memory --------------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def platform_rss(var_dir: Path) -> dict[str, int]:
    """KiB of RSS: all gunicorn processes together ("web") and the OCR worker ("ocr-worker")."""
    try:
        root = int((var_dir / "supervisord.pid").read_text().strip())
    except (OSError, ValueError):
        return {}
    tree = _children()
    found = {"web": 0, "ocr-worker": 0, "ocr-processes": 0}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo.extend(tree.get(pid, []))
        cmd = _cmdline(pid)
        if "gunicorn" in cmd:
            found["web"] += _rss_kib(pid)
        elif "celery" in cmd and " -Q ocr " in f" {cmd} ":  # the launcher and its worker (two while recycling)
            found["ocr-worker"] += _rss_kib(pid)
            found["ocr-processes"] += 1
    return found


# --- the load ----------------------------------------------------------------------------------------
def send(plain: api_load.Client, stack: api_load.Stack, body: bytes, headers: dict) -> tuple[int, dict | None]:
    """POST on the kept-alive connection, or on one of its own for a request with other headers."""
    conn = plain
    if headers:
        conn = api_load.Client(stack.url, stack.token)
        for key, value in headers.items():
            if value is None:
                conn.headers.pop(key, None)
            else:
                conn.headers[key] = value
    try:
        return conn.post(body)
    except OSError as exc:
        return -1, {"error": type(exc).__name__}
    finally:
        if conn is not plain:
            conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", action="store_true")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token")
    parser.add_argument("--var-dir", type=Path, default=api_load.ROOT / "var")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load before the first RSS reading")
    parser.add_argument("--sample-every", type=float, default=30, help="seconds between RSS readings")
    args = parser.parse_args()
    if not args.start and not args.token:
        parser.error("give --token (and --url, --var-dir) of a running platform, or --start")
    stack = api_load.start_stack() if args.start else api_load.Stack(args.url, args.token, args.var_dir)
    try:
        return soak(stack, args)
    finally:
        stack.stop()


def prepare(args) -> tuple[list[bytes], list[bytes], list[tuple[str, bytes, dict]]]:
    """New lines and pages (more than the run can send) and the bad inputs."""
    rng = random.Random(time.time_ns())
    print(f"rendering images for {args.clients} clients x {args.seconds:.0f} s ...", flush=True)
    fresh_lines = [api_load.body_of(api_load.line_image(i, rng)) for i in range(int(25 * args.seconds))]
    pages = [api_load.body_of(api_load.page_image(i, rng)) for i in range(int(4 * args.seconds))]
    return fresh_lines, pages, bad_inputs(api_load.line_image(0, rng))


def soak(stack: api_load.Stack, args) -> int:
    fresh_lines, pages, bad = prepare(args)
    lock = threading.Lock()
    seen: list[bytes] = []  # lines sent once: sending them again is a cache hit
    outcomes: Counter = Counter()
    server_errors: Counter = Counter()
    latencies: dict[str, list[float]] = {"line": [], "repeat": [], "page": [], "bad": []}
    stop = threading.Event()

    def pick(r: random.Random) -> tuple[str, bytes, dict]:
        roll = r.random()
        with lock:
            if roll < 0.40 and fresh_lines:
                body = fresh_lines.pop()
                seen.append(body)
                return "line", body, {}
            if roll < 0.60 and seen:
                return "repeat", r.choice(seen), {}
            if roll < 0.75 and pages:
                return "page", pages.pop(), {}
        name, body, headers = r.choice(bad)
        return "bad:" + name, body, headers

    def record(kind: str, status: int, payload: dict | None, elapsed: float) -> None:
        good = not kind.startswith("bad:")
        if good:
            ok = status in (200, 202) and bool(payload) and (status == 202 or payload.get("success") is True)
        else:
            ok = 400 <= status < 500 and bool(payload) and payload.get("success") is False
        with lock:
            latencies[kind if good else "bad"].append(elapsed)
            outcomes[(kind if good else "bad", status)] += 1
            if not ok:
                server_errors[(kind, status)] += 1

    def client(seed: int) -> None:
        r = random.Random(seed)
        plain = api_load.Client(stack.url, stack.token)
        while not stop.is_set():
            kind, body, headers = pick(r)
            started = time.perf_counter()
            status, payload = send(plain, stack, body, headers)
            record(kind, status, payload, time.perf_counter() - started)
        plain.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    timeline = sample_rss(stack.var_dir, started, args)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    wall = time.monotonic() - started

    report(outcomes, server_errors, latencies, timeline, wall, args)
    return 1 if server_errors else 0


def sample_rss(var_dir: Path, started: float, args) -> list[tuple[float, dict]]:
    """(seconds since the start, RSS readings) every --sample-every seconds until --seconds."""
    timeline = []
    while (elapsed := time.monotonic() - started) < args.seconds:
        time.sleep(min(args.sample_every, args.seconds - elapsed))
        timeline.append((time.monotonic() - started, platform_rss(var_dir)))
    return timeline


def report(outcomes: Counter, server_errors: Counter, latencies: dict, timeline: list, wall: float, args) -> None:
    total = sum(outcomes.values())
    print(f"\n{total} requests in {wall:.0f} s ({total / wall:.1f}/s) from {args.clients} clients")
    print("| request | answered | count |")
    print("| --- | --- | --- |")
    for (kind, status), n in sorted(outcomes.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        print(f"| {kind} | {status} | {n} |")
    print("\n| request | p50 ms | p95 ms |")
    print("| --- | --- | --- |")
    for kind, values in latencies.items():
        if values:
            ordered = sorted(values)
            print(
                f"| {kind} | {statistics.median(ordered) * 1000:.0f} | {ordered[int(0.95 * (len(ordered) - 1))] * 1000:.0f} |"
            )
    n_errors = sum(server_errors.values())
    print(f"\nerrors that are not the client's fault: {n_errors}" + (f" {dict(server_errors)}" if n_errors else ""))
    rss_warm = next((rss for t, rss in timeline if t >= args.warmup - 0.5), timeline[0][1])
    rss_end = timeline[-1][1]
    for name in ("web", "ocr-worker"):
        warm, end = rss_warm.get(name, 0), rss_end.get(name, 0)
        growth = (end - warm) / warm if warm else float("nan")
        print(
            f"RSS {name}: {warm / 1024:.0f} MiB after {args.warmup:.0f} s warm-up, {end / 1024:.0f} MiB at "
            f"{args.seconds:.0f} s: {growth:+.1%}"
        )

    print("\n| s | OCR worker MiB (processes) | web MiB |\n| --- | --- | --- |")
    for t, rss in timeline:
        ocr, web = rss.get("ocr-worker", 0) / 1024, rss.get("web", 0) / 1024
        print(f"| {t:.0f} | {ocr:.0f} ({rss.get('ocr-processes', 0)}) | {web:.0f} |")


if __name__ == "__main__":
    sys.exit(main())
