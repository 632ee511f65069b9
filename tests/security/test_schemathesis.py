"""Schemathesis against the OpenAPI schema of a running service (logged in as an all-sites
administrator and control-room user): no 5xx, every status documented, every response body,
content type and header as the schema says. Bounded (examples per operation, fixed seed) so
it fits in `make test`."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.security.helpers import seed_devices

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = int(os.environ.get("PP_TEST_SCHEMATHESIS_EXAMPLES", "40"))


def _st() -> list[str]:
    exe = Path(sys.executable).with_name("st")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("st")
    if found is None:
        pytest.skip("schemathesis CLI not installed")
    return [found]


async def test_api_conforms_to_its_openapi_schema_under_fuzzing(
    live_app: str, database_url: str, admin_headers: dict[str, str], tmp_path: Path
) -> None:
    """`st run` with the response checks passes on every operation."""
    seed_devices(database_url, {"x1": ("site-a", None), "d-1": ("site-a", "w-1")})
    proc = await asyncio.create_subprocess_exec(
        *_st(),
        "run",
        f"{live_app}/openapi.json",
        "--header",
        f"Authorization: {admin_headers['Authorization']}",
        "--checks",
        CHECKS,
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "20261129",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--request-timeout",
        "20",
        "--no-color",
        "--output-truncate",
        "false",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    async with asyncio.timeout(240):
        out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-12_000:]
    assert "No issues found" in text or "passed" in text.lower(), text[-3000:]
