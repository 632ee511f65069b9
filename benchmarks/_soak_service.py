"""The service under soak: `python -m api serve` in a subprocess, configured only through
``PP_*`` variables, started again after each SIGKILL; its resident memory sampled throughout."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from api.embedded import free_port


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
        """Least-squares slope of RSS in MiB per minute, from ``after_s`` into this life on
        (the fleet known, caches warm); None when it lived less than two minutes beyond."""
        pts = [(t - self.started, m) for t, m in self.rss if t - self.started >= after_s]
        if len(pts) < 120:
            return None
        t = np.array([p[0] for p in pts])
        m = np.array([p[1] for p in pts])
        return round(float(np.polyfit(t / 60.0, m, 1)[0]), 2)

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


class Service:
    """`python -m api serve` against the soak's broker and database.

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
            "PP_LOG_LEVEL": "WARNING",
            **env,
        }
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives: list[Incarnation] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True, name="rss")

    # ------------------------------------------------------------------ life

    def start(self, timeout_s: float = 180.0) -> float:
        """Start and wait until /healthz answers 200; returns the seconds that took."""
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "api", "serve"], env=self.env, stdout=log, stderr=log
            )
        life = Incarnation(pid=proc.pid, started=time.monotonic())
        with self._lock:
            self.proc = proc
            self.lives.append(life)
        if not self._sampler.is_alive():
            self._sampler.start()
        deadline = life.started + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited with {proc.returncode}; see {self.log_path}")
            if self.health() is not None:
                life.ready_s = time.monotonic() - life.started
                return life.ready_s
            time.sleep(0.2)
        raise TimeoutError(f"service not healthy after {timeout_s} s; see {self.log_path}")

    def kill(self) -> None:
        """SIGKILL: no flush, no acknowledgement, no detector snapshot."""
        self._end(signal.SIGKILL, "SIGKILL")

    def stop(self) -> int:
        """SIGTERM and wait (the graceful path); returns the exit code."""
        return self._end(signal.SIGTERM, "SIGTERM")

    def _end(self, sig: signal.Signals, how: str) -> int:
        with self._lock:
            proc, self.proc = self.proc, None
        if proc is None:
            return 0
        proc.send_signal(sig)
        code = proc.wait(60)
        life = self.lives[-1]
        life.ended, life.how = time.monotonic(), how
        return code

    def close(self) -> None:
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    # ------------------------------------------------------------------ probes

    def health(self) -> dict[str, object] | None:
        """/healthz when it answers 200 (broker, database and ingest up), else None."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return json.loads(r.read()) if r.status == 200 else None
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def rss_now(self) -> float | None:
        with self._lock:
            return rss_mb(self.proc.pid) if self.proc is not None else None

    def _sample(self) -> None:
        while not self._stop.wait(1.0):
            with self._lock:
                proc, life = self.proc, self.lives[-1] if self.lives else None
                if proc is None or life is None or life.ready_s is None:
                    continue
                value = rss_mb(proc.pid)
                if value is not None:
                    life.rss.append((time.monotonic(), value))
