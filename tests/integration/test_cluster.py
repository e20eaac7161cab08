"""The platform on separate hosts (bench/cluster.py --quick): network namespaces, PostgreSQL and
Redis on host A reached over the network, one OCR worker on each of hosts B and C."""

import json
import subprocess
import sys

import pytest

from bench.cluster import ROOT, cannot_make_hosts

pytestmark = [pytest.mark.integration]


def test_jobs_spread_survive_a_dead_host_and_follow_a_promotion(tmp_path):
    reason = cannot_make_hosts()
    if reason:
        pytest.skip(f"cannot make test hosts on this machine: {reason}")
    out = tmp_path / "cluster.json"
    run = subprocess.Popen(
        [sys.executable, "-m", "bench.cluster", "--quick", "--json", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = run.communicate(timeout=400)
    except subprocess.TimeoutExpired:
        run.terminate()  # the script removes its hosts on SIGTERM
        stdout, stderr = run.communicate(timeout=60)
    assert out.exists(), stdout[-3000:] + stderr[-3000:]
    summary = json.loads(out.read_text())
    assert "error" not in summary and run.returncode == 0, (summary, stderr[-3000:])
    # both worker hosts took jobs
    assert summary["spread"].get("ocr@host-b", 0) > 0 and summary["spread"].get("ocr@host-c", 0) > 0
    # the model promoted on A was served by both
    promotion = summary["promotion"]
    assert set(promotion["serving_after_s"]) == {"ocr@host-b", "ocr@host-c"}
    assert promotion["announced_after_s"] < 30  # announced on loading, before any job came
    assert {label for _, label in promotion["jobs_after"]} == {promotion["model"]}
    # host B killed while it held jobs: none lost, all succeeded
    killed = summary["host_b_killed"]
    assert killed["held_by_the_host"] > 0
    assert killed["lost"] == 0 and killed["succeeded"] == killed["jobs"]
    assert killed["by_host"].get("ocr@host-c", 0) > 0
    # Flower lists the live worker; the metrics say which model it serves
    assert "ocr@host-c" in summary["flower"]
    assert any('worker="ocr@host-c"' in line and promotion["model"] in line for line in summary["metrics_model_info"])
