"""A throwaway PostgreSQL server for tests and benchmarks: a fresh ``initdb`` in a temporary directory.

    with PostgresServer.start() as server:       # initdb, pg_ctl start on a free loopback port
        url = server.new_database()              # postgresql://council@127.0.0.1:PORT/t1, empty
    # stopped (pg_ctl stop -m immediate) and its directory removed

Runs the server binaries Debian's ``postgresql`` package installs (``/usr/lib/postgresql/N/bin``,
the newest N) or those on PATH. PostgreSQL refuses to run as root, so as root (CI) the server runs
as the ``postgres`` user the package creates, via ``runuser``. The server is real: fsync and
``synchronous_commit`` are left on, so durability tests test something.

``python tests/support/postgres_server.py`` starts one, prints a database URL, and runs until
interrupted (for benchmarks and trying things by hand).
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SUPERUSER = "council"


def bin_dir() -> Path | None:
    """Where PostgreSQL's server binaries are; None when PostgreSQL is not installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class PostgresServer:
    """One running server in its own directory, on loopback; make databases with :meth:`new_database`."""

    def __init__(self, root: Path, port: int, bindir: Path, as_user: str | None) -> None:
        self.root, self.port, self.bindir, self.as_user = root, port, bindir, as_user
        self._names = itertools.count(1)
        self.options = ""

    @classmethod
    def start(cls, max_connections: int = 300) -> PostgresServer:
        """initdb and start a server; raise RuntimeError saying what is missing if it cannot."""
        bindir = bin_dir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
        as_user = "postgres" if os.geteuid() == 0 else None
        # As root, under /tmp itself: a TMPDIR inside root's home would be closed to the postgres user.
        root = Path(tempfile.mkdtemp(prefix="council-pg-", dir="/tmp" if as_user else None))
        if as_user:
            shutil.chown(root, as_user)
        server = cls(root, _free_port(), bindir, as_user)
        server._run("initdb", "-D", str(root / "data"), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                    "--no-instructions")
        server.options = (f"-c listen_addresses=127.0.0.1 -p {server.port} -k {root} "
                          f"-c max_connections={max_connections}")
        server._start()
        return server

    def _start(self) -> None:
        # -l: the server's output goes to a file, not to pipes it would hold open after pg_ctl returns.
        self._run("pg_ctl", "-D", str(self.root / "data"), "-l", str(self.root / "log"), "-w", "-t", "60", "-o",
                  self.options, "start")

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.root, check=False)
        if done.returncode != 0:
            log = (self.root / "log").read_text() if (self.root / "log").exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr or done.stdout}\n{log}")

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (CREATE DATABASE, CREATE ROLE...)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]  # test-controlled text

    def new_database(self, prefix: str = "t") -> str:
        """Create an empty database and return its URL."""
        name = f"{prefix}{next(self._names)}"
        self.sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def restart(self) -> None:
        """Stop the server (fast: connections are cut) and start it again on the same port."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        self._start()

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    with PostgresServer.start() as running:
        print(running.new_database("bench"), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
