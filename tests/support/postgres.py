"""A private PostgreSQL cluster for the tests: initdb and pg_ctl in a temp folder.

It listens on 127.0.0.1 only, on ``YHT_TEST_PG_PORT`` (default 55432), with
trust authentication for its one user, and stops when the session ends.
PostgreSQL refuses to run as root, so as root the cluster belongs to the
``postgres`` user that Debian's package makes. Durability is switched off:
the data is thrown away anyway, and the tests run faster.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

PORT = int(os.environ.get("YHT_TEST_PG_PORT", "55432"))
USER = "yht"


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    # Debian keeps the server programs out of PATH, one folder per version.
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(
            f"{name} not found: install Debian's postgresql package (make postgres)"
        )
    return candidates[-1]


class PrivateCluster:
    def __init__(self, port: int = PORT) -> None:
        self.port = port
        self.base = Path(tempfile.mkdtemp(prefix="yht-pg-"))
        self.data = self.base / "data"
        self._owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")
            os.chown(self.base, self._owner.pw_uid, self._owner.pw_gid)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._owner else []
        done = subprocess.run(
            [*prefix, *command], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            log = self.base / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(
                f"{Path(command[0]).name} failed: {done.stderr.strip()}\n{tail}"
            )

    def start(self) -> None:
        self._run(
            _binary("initdb"), "-D", str(self.data), "-U", USER,
            "--auth=trust", "-E", "UTF8", "--no-locale",
        )  # fmt: skip
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.base} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            _binary("pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.base / "server.log"), "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        try:
            self._run(
                _binary("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"
            )
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    async def new_database(self) -> str:
        """A fresh, empty database; its address."""
        import asyncpg

        name = f"t_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(self.dsn())
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        return self.dsn(name)
