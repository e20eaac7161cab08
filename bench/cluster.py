"""The platform on separate hosts: network namespaces joined by a bridge, every service reached
over that network only, checked the way an operator would.

    sudo .venv/bin/python -m bench.cluster            # the full run (about 4 minutes on 2 cores)
    sudo .venv/bin/python -m bench.cluster --quick    # the slimmer run the test suite makes

Hosts (each a network namespace with its own loopback; all addresses are the run's own, on a
bridge inside host A, 10.199.0.0/24):
- A (10.199.0.1): PostgreSQL (a throwaway cluster from Debian's package, password auth over the
  network), Redis (password), the web server (gunicorn, production settings), the training
  worker, Flower; and this script's checks, which send requests as a client would.
- B, C (.2, .3): one OCR worker each under workers.launcher, configured only with A's address.
- D (.4): an OCR worker that joins late.
Image and model storage is one shared folder (OCR_VAR_DIR) standing in for the shared volume
docs/running.md asks for; namespaces share the file system, so this is what a network file system
or a volume mounted on every host gives. Production: a volume every host mounts (NFS, EFS, a
Kubernetes ReadWriteMany volume) or an S3-compatible bucket for the images.

Checks, in order: jobs spread over B and C; throughput with one and with two worker hosts (two
cores: this shows distribution, not scaling); a model promoted over the API on A is served by
every worker host (time from the promotion to the last host serving it); host B's processes
killed mid-run lose no job (time until every job is done); a host that joins late takes jobs;
a worker host whose link goes down and comes back loses no job and serves again; Flower lists the
workers. A summary is printed, and written as JSON with --json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from bench.cluster_run import ROOT, SUBNET, run

HOSTS = {"a": 1, "b": 2, "c": 3, "d": 4}


# --- the network: run outside the namespaces -----------------------------------------------------
def cannot_make_hosts() -> str:
    """Why this machine cannot run the cluster ("" when it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN)"
    for tool, package in (("ip", "iproute2"), ("redis-server", "redis-server")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian's {package})"
    if not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")):
        return "no PostgreSQL server binaries (Debian's postgresql)"
    probe = f"ocrprobe{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def make_network(tag: str) -> dict[str, str]:
    """One namespace per host; A holds a bridge, the others a veth into it. Returns host -> namespace."""
    names = {host: f"ocr{tag}{host}" for host in HOSTS}
    for ns in names.values():
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    a = names["a"]
    _ip("-n", a, "link", "add", "br0", "type", "bridge")
    _ip("-n", a, "addr", "add", f"{SUBNET}.1/24", "dev", "br0")
    _ip("-n", a, "link", "set", "br0", "up")
    for host, number in HOSTS.items():
        if host == "a":
            continue
        port = f"v{host}"
        _ip("-n", a, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", names[host])
        _ip("-n", a, "link", "set", port, "master", "br0", "up")
        _ip("-n", names[host], "addr", "add", f"{SUBNET}.{number}/24", "dev", "eth0")
        _ip("-n", names[host], "link", "set", "eth0", "up")
    return names


def remove_network(names: dict[str, str]) -> None:
    for ns in names.values():
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def outer(args) -> int:
    reason = cannot_make_hosts()
    if reason:
        print(f"cannot make test hosts here: {reason}", file=sys.stderr)
        return 3
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a terminated run still removes its hosts
    names = make_network(uuid.uuid4().hex[:4])
    shared = Path(tempfile.mkdtemp(prefix="ocr-cluster-"))
    os.chmod(shared, 0o755)
    try:
        cmd = ["ip", "netns", "exec", names["a"], sys.executable, "-m", "bench.cluster", "--inside"]
        cmd += ["--names", json.dumps(names), "--shared", str(shared)]
        cmd += ["--quick"] if args.quick else []
        cmd += ["--json", str(args.json)] if args.json else []
        return subprocess.run(cmd, cwd=ROOT).returncode
    finally:
        remove_network(names)
        shutil.rmtree(shared, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the checks only: fewer jobs, shorter timeouts")
    parser.add_argument("--json", type=Path, help="write the summary here")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--names", help=argparse.SUPPRESS)
    parser.add_argument("--shared", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not args.inside:
        return outer(args)
    return run(json.loads(args.names), args.shared, args.quick, args.json)


if __name__ == "__main__":
    sys.exit(main())
