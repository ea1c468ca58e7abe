"""A PostgreSQL server of a test's own, to stop and start at will (the shared CI cluster must never be).

initdb and pg_ctl in a temporary directory, run as the `postgres` user when the test runs as root
(initdb refuses root). The server listens on 127.0.0.1 only, trusts local connections (a test
database, nothing in it), and runs with fsync off: a stop, even `immediate`, kills processes, not
the machine, so what a COMMIT acknowledged is still in the page cache when it comes back.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

STOP_TIMEOUT = 60


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian's layout), or None."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    return versions[-1].parent if versions else None


class PgServer:
    """`start()`, `stop(mode)`, `url`; `close()` stops it whatever state it is in and removes its files."""

    def __init__(self, port: int):
        self.bin = postgres_bin()
        if self.bin is None:
            raise FileNotFoundError("no PostgreSQL binaries in /usr/lib/postgresql/*/bin")
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="potluck-pg-"))
        self.data, self.log = self.dir / "data", self.dir / "server.log"
        self.user = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)
        self.url = f"postgresql://potluck@127.0.0.1:{port}/postgres"
        self._pg("initdb", "-D", str(self.data), "-U", "potluck", "-A", "trust", "--no-sync", "-E", "UTF8")

    def _pg(self, tool: str, *args: str, timeout: float = STOP_TIMEOUT) -> None:
        command = [str(self.bin / tool), *args]
        if self.user is not None:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} {' '.join(args[:2])} failed: {done.stderr[-2000:]} {log}")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   f"-c max_connections=20 -c shared_buffers=16MB")
        self._pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        """`immediate` is a crash (no checkpoint, recovery at the next start); `fast` a clean stop."""
        self._pg("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.url, connect_timeout=10, autocommit=True) as db:
            db.execute(sql)

    def close(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
