"""The control-room page in a real headless Chromium: login, live positions, an injected
incident becoming an alarm, acknowledgement from the page, the supervisor's evacuation push."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import psycopg
from playwright.async_api import Page, expect

from tests.browser.conftest import Stack
from tests.browser.demo_data import PASSWORD

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: PP_TEST_SCREENSHOTS=1 refreshes the screenshots kept in docs/.
KEEP_SCREENSHOTS = os.environ.get("PP_TEST_SCREENSHOTS") == "1"


async def open_page(browser: Any, stack: Stack, *, width: int = 1600, height: int = 1000) -> Page:
    context = await browser.new_context(
        viewport={"width": width, "height": height},
        locale="zh-CN",
        timezone_id="Europe/Berlin",  # the page must show site time, not the browser's
    )
    page: Page = await context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    errors: list[str] = []
    page.errors = errors  # type: ignore[attr-defined]
    await page.goto(stack.url + "/")
    return page


async def log_in(page: Page, username: str) -> None:
    await page.fill("#login-form input[name=username]", username)
    await page.fill("#login-form input[name=password]", PASSWORD)
    await page.click("#login-form button[type=submit]")


async def worker_position(page: Page, device: str) -> str | None:
    marker = page.locator(f'#plan g.plan-worker[data-device="{device}"]')
    return await marker.get_attribute("transform", timeout=10_000)


def db_row(stack: Stack, sql: str, *args: object) -> tuple[Any, ...] | None:
    assert stack.settings.database.url
    with psycopg.connect(stack.settings.database.url) as conn:
        return conn.execute(sql, args).fetchone()


async def test_page_logged_in_as_control_room_shows_site_and_moving_workers(
    stack: Stack, browser: Any
) -> None:
    """Login → the plan shows the three permits' work areas and every worker; positions move;
    the permit board lists the permits with time left; the clock shows site time."""
    page = await open_page(browser, stack)
    await expect(page.locator("#login-form")).to_be_visible()
    await log_in(page, stack.site.users["control_room"])
    await expect(page.locator("#plan g.plan-area")).to_have_count(3, timeout=15_000)
    await expect(page.locator("#plan g.plan-worker")).to_have_count(
        len(stack.site.devices), timeout=15_000
    )
    await expect(page.locator("#conn-status")).to_have_class("conn live", timeout=10_000)
    board = page.locator("#permit-board tbody tr.permit")
    await expect(board).to_have_count(3)
    await expect(page.locator("#permit-board")).to_contain_text("受限空间作业")
    await expect(page.locator("#permit-board")).to_contain_text("赵敏")  # DH-0815's watcher
    first = await worker_position(page, "ww-sx-01")
    async with asyncio.timeout(15):
        while await worker_position(page, "ww-sx-01") == first:
            await asyncio.sleep(0.5)
    clock = await page.locator("#site-clock").inner_text()
    assert clock.endswith("Asia/Shanghai")
    await page.click("#lang-toggle")  # English: the page's strings and the API's labels
    board_text = page.locator("#permit-board")
    await expect(board_text).to_contain_text("confined-space entry", timeout=10_000)
    await expect(page.locator("header.topbar nav")).to_contain_text("Control room")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_sos_appears_as_alarm_and_acknowledge_from_page_is_recorded(
    stack: Stack, browser: Any
) -> None:
    """An SOS published by a confined-space entrant shows as a critical alarm within seconds,
    the evacuation banner appears, and the operator's acknowledgement reaches the database."""
    page = await open_page(browser, stack)
    await log_in(page, stack.site.users["control_room"])
    await expect(page.locator("#plan g.plan-worker")).to_have_count(
        len(stack.site.devices), timeout=15_000
    )
    if KEEP_SCREENSHOTS:
        await asyncio.sleep(40)  # a minute of trails and sparklines for the picture
    stack.fleet.sos.add("ww-sx-01")
    alarm = page.locator('#alarm-list li.alarm[data-kind="sos"]')
    await expect(alarm).to_have_count(1, timeout=10_000)
    await expect(alarm).to_contain_text("陈杰")
    await expect(alarm).to_have_class("alarm sev-critical state-active")
    await expect(page.locator("#evac-banner")).to_be_visible(timeout=10_000)
    await expect(page.locator("#evac-banner")).to_contain_text("SX-0816")
    await page.locator('#plan g.plan-worker[data-device="ww-sx-01"] circle').click()
    await expect(page.locator("#worker-panel .vital")).to_have_count(4)
    alarm_id = int(await alarm.get_attribute("data-alarm-id") or 0)
    await alarm.locator("button.ack").click()
    await expect(alarm.locator(".acked-by")).to_contain_text("cr.wang")
    row = db_row(
        stack, "SELECT acked_by, acked_at IS NOT NULL FROM alarms WHERE alarm_id = %s", alarm_id
    )
    assert row == ("cr.wang", True)
    if KEEP_SCREENSHOTS:
        await page.evaluate("window.scrollTo(0, 0)")
        await asyncio.sleep(2)
        await page.screenshot(path=str(DOCS / "control-room.png"))
    await alarm.locator("button.resolve").click()
    await alarm.locator("textarea.resolve-reason").fill("误触 SOS，已电话确认人员安全")
    await alarm.locator("form.resolve-form button[type=submit]").click()
    await expect(page.locator(f'#alarm-list li[data-alarm-id="{alarm_id}"]')).to_have_count(0)
    row = db_row(stack, "SELECT resolved_by, resolution FROM alarms WHERE alarm_id = %s", alarm_id)
    assert row == ("cr.wang", "误触 SOS，已电话确认人员安全")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_supervisor_phone_view_receives_evacuation_push_and_acknowledges(
    stack: Stack, browser: Any
) -> None:
    """SpO2 of both confined-space entrants collapses; the site supervisor's phone shows the
    evacuation push and the people still inside; the acknowledgement is stored."""
    page = await open_page(browser, stack, width=390, height=844)
    await log_in(page, stack.site.users["supervisor"])
    await expect(page.locator("#my-permits li.my-permit")).to_have_count(3, timeout=15_000)
    await expect(page.locator("#conn-status")).to_have_class("conn live", timeout=10_000)
    for device in ("ww-sx-01", "ww-sx-02"):
        stack.fleet.spo2[device] = 80.0
    push = page.locator("#push-list li.push.evacuation")
    await expect(push.first).to_be_visible(timeout=60_000)
    await expect(push.first).to_contain_text("Evacuate the confined space now")
    await expect(page.locator("#sup-evacuations")).to_contain_text("SX-0816", timeout=15_000)
    push_id = await push.first.get_attribute("data-push")
    if KEEP_SCREENSHOTS:
        await page.screenshot(path=str(DOCS / "supervisor-phone.png"))
    await push.first.locator("button.push-ack").click()
    await expect(page.locator(f'#push-list li[data-push="{push_id}"]')).to_have_class(
        "push evacuation acked"
    )
    row = db_row(stack, "SELECT user_id, state FROM pushes WHERE push_id = %s", push_id)
    assert row == (stack.site.users["supervisor"], "acked")
    assert page.errors == []  # type: ignore[attr-defined]


def test_chromium_used_is_the_systems() -> None:
    """The tests drive Debian's Chromium, never a downloaded browser build."""
    from tests.browser.conftest import CHROMIUM

    assert Path(CHROMIUM).exists()
    assert shutil.which("chromium") in (CHROMIUM, None) or os.environ.get("PP_TEST_CHROMIUM")
