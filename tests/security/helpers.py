"""Helpers of the security tests: sites, devices and users in the test database."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from api.auth import TOKEN_URL

PASSWORD = "correct horse battery staple"


def seed_devices(database_url: str, devices: dict[str, tuple[str, str | None]]) -> None:
    """``{device_id: (site_id, worker_id or None)}`` as rows (sites and workers included)."""
    with psycopg.connect(database_url) as conn:
        for device, (site, worker) in devices.items():
            conn.execute(
                "INSERT INTO sites (site_id, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (site, site),
            )
            if worker:
                conn.execute(
                    "INSERT INTO workers (worker_id, site_id, name) VALUES (%s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (worker, site, worker),
                )
            conn.execute(
                "INSERT INTO devices (device_id, site_id, worker_id) VALUES (%s, %s, %s)",
                (device, site, worker),
            )


async def create_user(
    http: httpx.AsyncClient, admin: dict[str, str], username: str, **fields: Any
) -> dict[str, Any]:
    """Create a user through the API as ``admin``; returns the reply."""
    body = {"username": username, "display_name": username, "password": PASSWORD, **fields}
    r = await http.post("/api/v1/users", json=body, headers=admin)
    assert r.status_code == 201, r.text
    reply: dict[str, Any] = r.json()
    return reply


async def login(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await http.post(TOKEN_URL, data={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
