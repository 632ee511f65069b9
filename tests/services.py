"""Real services for the tests: a private Mosquitto and a private PostgreSQL started from the
machine's binaries, or the embedded ones when the machine has none, or the ones named by
``PP_TEST_MQTT_URL`` / ``PP_TEST_DATABASE_URL``."""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from api.embedded import free_port

#: The project's broker settings (deploy/mosquitto.conf); its site section (listener,
#: authentication, paths, logging) is replaced by a private port and directory.
DEPLOY_MOSQUITTO_CONF = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto.conf"
_SITE_KEYS = {"listener", "allow_anonymous", "password_file", "acl_file", "persistence_location"}
_SITE_KEYS |= {"log_dest"}


def _mosquitto_template() -> str:
    lines = [
        line.strip()
        for line in DEPLOY_MOSQUITTO_CONF.read_text().splitlines()
        if line.strip() and not line.startswith("#") and line.split()[0] not in _SITE_KEYS
    ]
    site = [
        "listener {port} 127.0.0.1",
        "allow_anonymous {anonymous}",
        "persistence_location {data}/",
        "log_dest file {data}/mosquitto.log",
    ]
    return "\n".join(site + lines) + "\n"


MOSQUITTO_CONF = _mosquitto_template()


def wait_port(host: str, port: int, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port}")


class Mosquitto:
    """A private Mosquitto on a free port, with the project's settings; can be restarted.
    ``anonymous=False`` and ``extra_conf`` (e.g. ``password_file``/``acl_file`` lines) make a
    broker that checks credentials."""

    def __init__(self, binary: str, *, anonymous: bool = True, extra_conf: str = "") -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="pp-mosquitto-"))
        self.port = free_port()
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            MOSQUITTO_CONF.format(port=self.port, data=self.dir, anonymous=str(anonymous).lower())
            + extra_conf
        )
        if os.geteuid() == 0:
            shutil.chown(self.dir, "mosquitto", "mosquitto")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivatePostgres:
    """A private PostgreSQL cluster from the machine's binaries on a free port; can be stopped
    and started again (for outage tests). As root it runs as the ``postgres`` system user."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="pp-postgres-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            shutil.chown(self.dir, self.user, self.user)
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\nfsync = off\n"
                "synchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
            )

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.dir / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


class EmbeddedBrokerThread:
    """The embedded amqtt broker on its own thread and event loop (last resort)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="amqtt")
        self._thread.start()
        self._ready.wait(15)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _run(self) -> None:
        from api.embedded import embedded_broker

        async def main() -> None:
            self._stop = asyncio.Event()
            async with embedded_broker(port=self.port):
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def find_pg_bindir() -> Path | None:
    for initdb in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True):
        return Path(initdb).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def create_database(admin_url: str, name: str, template: str | None = None) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        tpl = f" TEMPLATE {template}" if template else ""
        conn.execute(f'CREATE DATABASE "{name}"{tpl}')


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_url(admin_url: str, name: str) -> str:
    """``admin_url`` with its database replaced by ``name``."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{name}"))
