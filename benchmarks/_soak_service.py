"""The service under soak: ``python -m api serve`` as a separate process (so it can be killed
with SIGKILL and started again), configured only through ``PP_*`` variables; its resident
memory sampled every second, per incarnation."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import numpy as np

from api.embedded import free_port


class ServiceExited(RuntimeError):
    """Raised when the service process exits before it is healthy."""


def rss_mb(pid: int) -> float | None:
    """Resident set size of ``pid`` in MiB (None once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError):
        return None
    return None


@dataclass
class Incarnation:
    """One life of the service process, from start to kill or stop."""

    pid: int
    started: float
    ready_s: float | None = None
    ended: float | None = None
    how: str = "running"
    rss: list[tuple[float, float]] = field(default_factory=list)  # (monotonic, MiB)

    def trend(self, after_s: float = 120.0) -> float | None:
        """Least-squares slope of RSS in MiB per minute from ``after_s`` into this life on
        (fleet known, caches warm); None when it lived less than two minutes beyond that."""
        pts = [(t - self.started, m) for t, m in self.rss if t - self.started >= after_s]
        if len(pts) < 120:
            return None
        t = np.array([p[0] for p in pts]) / 60.0
        return round(float(np.polyfit(t, np.array([p[1] for p in pts]), 1)[0]), 2)

    def summary(self, t0: float) -> dict[str, object]:
        values = [m for _, m in self.rss]
        return {
            "pid": self.pid,
            "started_at_s": round(self.started - t0, 1),
            "ready_after_s": None if self.ready_s is None else round(self.ready_s, 1),
            "lived_s": round((self.ended or time.monotonic()) - self.started, 1),
            "ended_by": self.how,
            "rss_mb_first": round(values[0], 1) if values else None,
            "rss_mb_last": round(values[-1], 1) if values else None,
            "rss_mb_max": round(max(values), 1) if values else None,
            "rss_mb_per_min_after_120s": self.trend(),
        }


class ServiceProcess:
    """`python -m api serve` against the soak's broker and database.

    An async context manager: leaving it (normally, on an error or on cancellation) kills
    whatever incarnation is running and stops the memory sampler.

    Args:
        env: the ``PP_*`` settings (URLs, topic root, client id, data dir).
        log_path: where its stdout and stderr go (appended across incarnations).
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("PP_")},
            "PP_AUTH_SECRET": secrets.token_urlsafe(48),
            "PP_API_PORT": str(self.port),
            "PP_LOG_LEVEL": "INFO",
            **env,
        }
        self.log_path = log_path
        self.proc: asyncio.subprocess.Process | None = None
        self.lives: list[Incarnation] = []
        self._sampler: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._sampler = asyncio.create_task(self._sample(), name="soak-rss")
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sampler
        await self._end(signal.SIGKILL, "SIGKILL (harness exit)")

    # ------------------------------------------------------------------ life

    async def start(self, timeout_s: float = 180.0, attempts: int = 3) -> float:
        """Start and wait until /healthz answers 200; returns the seconds that took.

        Like a service manager (``Restart=on-failure``), a process that exits while starting
        is started again, up to ``attempts`` times; each failed start stays in ``lives``.
        """
        for attempt in range(1, attempts + 1):
            try:
                return await self._start_once(timeout_s)
            except ServiceExited:
                if attempt == attempts:
                    raise
                await asyncio.sleep(1.0)
        raise AssertionError("unreachable")

    async def _start_once(self, timeout_s: float) -> float:
        log = await asyncio.to_thread(open, self.log_path, "ab")
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "api",
                "serve",
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=asyncio.subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C at the terminal reaches the harness only
            )
        finally:
            log.close()
        life = Incarnation(pid=proc.pid, started=time.monotonic())
        self.proc = proc
        self.lives.append(life)
        async with asyncio.timeout(timeout_s):
            while await self.health() is None:
                if proc.returncode is not None:
                    self.proc = None
                    life.ended, life.how = time.monotonic(), f"exited {proc.returncode} starting"
                    raise ServiceExited(f"service exited with {proc.returncode}; {self.log_path}")
                await asyncio.sleep(0.2)
        life.ready_s = time.monotonic() - life.started
        return life.ready_s

    async def kill(self) -> None:
        """SIGKILL: no flush, no acknowledgement, no detector snapshot."""
        await self._end(signal.SIGKILL, "SIGKILL")

    async def stop(self) -> int:
        """SIGTERM and wait (the graceful path); returns the exit code."""
        return await self._end(signal.SIGTERM, "SIGTERM")

    async def _end(self, sig: signal.Signals, how: str) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
        try:
            async with asyncio.timeout(60):
                code = await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        life = self.lives[-1]
        life.ended, life.how = time.monotonic(), how
        return code

    # ------------------------------------------------------------------ probes

    def _health(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return json.loads(r.read()) if r.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    async def health(self) -> dict[str, object] | None:
        """/healthz when it answers 200 (broker, database and ingest up), else None."""
        return await asyncio.to_thread(self._health)

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            proc, life = self.proc, self.lives[-1] if self.lives else None
            if proc is None or life is None or life.ready_s is None:
                continue
            value = rss_mb(proc.pid)
            if value is not None:
                life.rss.append((time.monotonic(), value))
