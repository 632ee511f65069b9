"""The request body limit: app-wide default, raised by a route's own max_body_size (uploads),
answered in the API's error form whether the size is declared or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request

from api import errors
from api.middleware import BodySizeLimit
from tests.conftest import serve_app
from tests.factories import HTTP_TIMEOUT_S


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    @app.post("/small")
    async def small(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    @app.post("/upload", max_body_size=4096)
    async def upload(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    app.add_middleware(BodySizeLimit, max_bytes=1024)
    return app


async def _stream(n: int) -> AsyncIterator[bytes]:
    for _ in range(n // 100):
        yield b"x" * 100


async def test_body_limit_default_and_route_override() -> None:
    """1 KiB everywhere, 4 KiB on the route that says so; declared or chunked alike."""
    async with (
        serve_app(_app()) as url,
        httpx.AsyncClient(base_url=url, timeout=HTTP_TIMEOUT_S) as http,
    ):
        ok_small = await http.post("/small", content=b"x" * 1000)
        big_small = await http.post("/small", content=b"x" * 2000)
        ok_upload = await http.post("/upload", content=b"x" * 3000)
        big_upload = await http.post("/upload", content=b"x" * 5000)
        streamed_small = await http.post("/small", content=_stream(2000))
        streamed_upload = await http.post("/upload", content=_stream(3000))
        streamed_big = await http.post("/upload", content=_stream(5000))
    assert (ok_small.status_code, ok_small.json()) == (200, {"n": 1000})
    assert (ok_upload.status_code, ok_upload.json()) == (200, {"n": 3000})
    assert (streamed_upload.status_code, streamed_upload.json()) == (200, {"n": 3000})
    for r, limit in (
        (big_small, 1024),
        (streamed_small, 1024),
        (big_upload, 4096),
        (streamed_big, 4096),
    ):
        assert r.status_code == 413
        assert r.json() == {
            "detail": f"request body larger than {limit} bytes",
            "code": "payload_too_large",
        }
