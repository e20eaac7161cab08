"""The OpenAPI schema is the contract: schemathesis (4.32.5) generates requests for every operation
of /ocr/v1/schema, as a staff client, DELETE included, and checks every answer against the schema
with all its checks (no server error; status codes, content types, headers and bodies as
documented; schema-violating requests refused; schema-valid ones accepted, except where
tests/api/schemathesis.toml says why not). A fixed seed and 8 examples per operation keep it to
about a minute; a failure prints schemathesis' report with a curl line to reproduce it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from workers.presence import WORKERS_KEY

CONFIG = Path(__file__).with_name("schemathesis.toml")


@pytest.mark.django_db(transaction=True)
def test_every_operation_answers_as_its_schema_says(live_server, redis_server, make_user, settings):
    from rest_framework.authtoken.models import Token

    settings.OCR_THROTTLE_PER_MINUTE = 0  # hundreds of requests a minute: the contract, not the rate limit
    redis_server.zadd(WORKERS_KEY, {"ghost@test": time.time() + 3600})  # submissions are queued, not refused
    token = Token.objects.create(user=make_user("contract", is_staff=True)).key
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is missing: requirements/dev.txt installs it"
    cmd = [
        *(cli, "--config-file", str(CONFIG), "run", f"{live_server.url}/ocr/v1/schema"),
        *("-H", f"Authorization: Token {token}", "--max-examples", "8", "--seed", "1", "--workers", "1"),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
