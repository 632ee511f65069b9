"""A real headless Chromium (Debian's) driven by Playwright, against the whole service with
demo-like data and a live fleet on the real broker."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from tests.browser.demo_data import DemoSite, Fleet, seed
from tests.conftest import serve_app

CHROMIUM = os.environ.get("PP_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

if not os.path.exists(CHROMIUM):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, or set PP_TEST_CHROMIUM)",
        allow_module_level=True,
    )


@dataclass
class Stack:
    url: str
    site: DemoSite
    fleet: Fleet
    settings: Settings


@pytest.fixture
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    """The service on a real port, the demo site seeded, its wearables publishing at 1 Hz."""
    assert settings.database.url
    assert settings.mqtt.url
    site = seed(settings.database.url, settings.auth)
    fleet = Fleet(mqtt_url=settings.mqtt.url, topic_root=settings.mqtt.topic_root, site=site)
    async with serve_app(create_app(settings)) as url, fleet.running():
        yield Stack(url=url, site=site, fleet=fleet, settings=settings)


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    """Chromium from the system (Playwright never downloads a browser here)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()
