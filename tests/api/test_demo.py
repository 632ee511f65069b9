"""`permitpulse demo` on embedded defaults: starts, prints demo users, stores live data a demo
user can read, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest


def _wait_banner(proc: subprocess.Popen[str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if m := re.search(r"running at (http://\S+?)/ ", line):
            return m.group(1)
    tail = "".join(seen[-30:])
    pytest.fail(f"demo printed no URL (exit code {proc.poll()}); its output ended:\n{tail}")


def _read_demo_users(proc: subprocess.Popen[str]) -> dict[str, tuple[str, str]]:
    """role -> (user name, password) from the table the demo prints after its banner."""
    assert proc.stdout is not None
    users: dict[str, tuple[str, str]] = {}
    header = proc.stdout.readline()
    assert header.startswith("Demo users"), header
    while len(users) < 7:
        parts = proc.stdout.readline().split()
        assert len(parts) == 3, parts
        users[parts[0]] = (parts[1], parts[2])
    return users


def _processes_using(path: Path) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if any(str(path) in arg for arg in p.info["cmdline"] or ()):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.slow
def test_demo_on_embedded_defaults_serves_live_data_and_stops_cleanly(tmp_path: Path) -> None:
    """No broker or database configured: the demo embeds both, data flows, SIGINT ends all."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PP_")}
    env.update(PP_DATA_DIR=str(tmp_path / "data"), PP_API_PORT="0", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api", "demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = _wait_banner(proc, timeout_s=120)
        users = _read_demo_users(proc)
        children = psutil.Process(proc.pid).children(recursive=True)
        deadline = time.monotonic() + 60
        stored = 0
        with httpx.Client(base_url=base, timeout=5) as http:
            while time.monotonic() < deadline and stored == 0:
                health = http.get("/healthz")
                stored = (
                    health.json()["ingest"]["samples_stored"] if health.status_code == 200 else 0
                )
                time.sleep(0.5)
            assert health.json()["status"] == "ok"
            assert health.json()["storage_form"] == "native-partitions"
            # The printed control-room user logs in and reads a simulated device.
            name, password = users["control_room"]
            login = http.post("/api/v1/auth/token", data={"username": name, "password": password})
            assert login.status_code == 200, login.text
            token = login.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            devices = http.get("/api/v1/devices", headers=auth)
            assert devices.status_code == 200, devices.text
            device = next(d["device_id"] for d in devices.json() if d["latest"])
            anonymous = http.get(f"/api/v1/devices/{device}/latest")
            latest = http.get(f"/api/v1/devices/{device}/latest", headers=auth)
            assert anonymous.status_code == 401
            assert latest.status_code == 200, latest.text
            assert latest.json()["device_id"] == device
        assert stored > 0
        assert sorted(users) == [
            "admin",
            "approver",
            "control_room",
            "safety",
            "supervisor",
            "watcher",
            "worker",
        ]
        assert _processes_using(tmp_path), "the embedded PostgreSQL should be running"
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    assert code == 0
    time.sleep(0.5)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not _processes_using(tmp_path), "no process of the demo may outlive it"
