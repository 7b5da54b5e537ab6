"""A real PostgreSQL (Debian's server) for the centre's tests and scripts/simulate_district.py:
a new cluster in a temporary folder, on a free loopback port, with a password-protected user
over TCP. As root (CI), the server runs as the `postgres` system user (it refuses root).
stop()/start() keep the port and the data (restart tests)."""

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from mqtt_broker import free_port

USER, PASSWORD, DATABASE = "detector", "db-Pa55-word", "detector"


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


BIN = _bin_dir()

# skipped on a developer machine without PostgreSQL; in CI (CI=true) a missing server fails instead
needs_postgres = pytest.mark.skipif(
    not os.environ.get("CI") and BIN is None,
    reason="PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it)",
)


class Postgres:
    def __init__(self, folder: Path) -> None:
        if BIN is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql; scripts/test.sh does it)")
        self.folder = Path(folder)
        self.data = self.folder / "data"
        self.port = free_port()
        self.host = "127.0.0.1"
        self.as_root = os.geteuid() == 0
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.as_root:  # the server's files must be its user's
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            for parent in self.folder.parents:  # it must reach its folder
                if parent == Path("/"):
                    break
                os.chmod(parent, os.stat(parent).st_mode | 0o001)
        pwfile = self.folder / "pw"
        pwfile.write_text("superuser-pw\n")
        if self.as_root:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._run(
            BIN / "initdb", "-D", str(self.data), "-U", "postgres", f"--pwfile={pwfile}", "--auth-local=trust",
            "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        self.process: subprocess.Popen | None = None

    def _command(self, *args) -> list[str]:
        command = [str(a) for a in args]
        return ["runuser", "-u", "postgres", "--", *command] if self.as_root else command

    def _run(self, *args) -> None:
        subprocess.run(self._command(*args), check=True, capture_output=True, cwd=self.folder)

    def start(self) -> "Postgres":
        log = open(self.folder / "postgres.log", "ab")
        self.process = subprocess.Popen(
            self._command(BIN / "postgres", "-D", self.data, "-p", self.port, "-h", self.host, "-k", self.folder),
            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited: {(self.folder / 'postgres.log').read_text()[-2000:]}")
            ready = subprocess.run([str(BIN / "pg_isready"), "-h", self.host, "-p", str(self.port)], capture_output=True)
            if ready.returncode == 0:
                return self
            time.sleep(0.1)
        raise RuntimeError("postgres did not start in 30 s")

    def create_database(self) -> "Postgres":
        self.sql(f"CREATE ROLE {USER} LOGIN PASSWORD '{PASSWORD}'")
        self.sql(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        return self

    def sql(self, statement: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the Unix socket; its output."""
        psql = shutil.which("psql") or str(BIN / "psql")
        done = subprocess.run(
            self._command(psql, "-h", self.folder, "-p", self.port, "-U", "postgres", "-d", database, "-tAc", statement),
            check=True, capture_output=True, text=True, cwd=self.folder,
        )  # fmt: skip
        return done.stdout.strip()

    def stop(self, mode: str = "fast") -> None:
        """fast: a clean shutdown; immediate: like a crash (recovery at the next start)."""
        if self.process is not None and self.process.poll() is None:
            self._run(BIN / "pg_ctl", "stop", "-D", self.data, "-m", mode, "-w")
            self.process.wait(30)
        self.process = None

    def database_section(self) -> dict:
        """The centre config's `database:` section (the password from ${TEST_DB_PASSWORD})."""
        return {
            "engine": "postgresql",
            "host": self.host,
            "port": self.port,
            "name": DATABASE,
            "user": USER,
            "password": "${TEST_DB_PASSWORD}",
        }


@pytest.fixture(name="postgres", scope="module")
def postgres_fixture(tmp_path_factory):
    """A PostgreSQL server with the `detector` database, for one test module."""
    server = Postgres(tmp_path_factory.mktemp("postgres")).start().create_database()
    yield server
    server.stop()
