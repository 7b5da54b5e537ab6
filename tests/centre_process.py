"""The management centre as its users run it, for the tests: `detector centre CONFIG` in a
subprocess against a real broker (tests/mqtt_broker.py) and SQLite or a real PostgreSQL
(tests/postgres_server.py). stop()/start() keep config and data (restart tests)."""

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

DETECTOR = [sys.executable, "-m", "detector"]
DB_PASSWORD = "db-Pa55-word"  # tests/postgres_server.PASSWORD, passed as ${TEST_DB_PASSWORD}
OPEN311_KEY = "open311-test-key"


class Centre:
    def __init__(self, folder: Path, broker, postgres=None, *, client_id: str = "centre-test-1", **overrides) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path = self.folder / f"{client_id}.yaml"
        config = {
            "storage_dir": str(self.folder / "store"),
            "mqtt": {"host": broker.host, "port": broker.port, "topic_prefix": "city", "client_id": client_id, "keepalive_s": 5},
            "database": postgres.database_section() if postgres else {"path": str(self.folder / "centre.sqlite3")},
            "web": {"port": 0, "secret_key": "${TEST_CENTRE_SECRET}"},
            "open311": {"api_keys": ["${TEST_OPEN311_KEY}"]},
            "fleet": {"check_interval_s": 1},
        }
        for key, value in overrides.items():
            config[key] = config.get(key, {}) | value if isinstance(value, dict) else value
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = os.environ | {
            "TEST_DB_PASSWORD": DB_PASSWORD,
            "TEST_CENTRE_SECRET": "test-secret-key-" + "x" * 40,
            "TEST_OPEN311_KEY": OPEN311_KEY,
        }
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self.output: list[str] = []

    def command(self, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
        """A `detector` command on this centre's config (centre-user, centre-manage)."""
        done = subprocess.run([*DETECTOR, *args], capture_output=True, text=True, env=self.env | (env or {}), timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"{args}: exit {done.returncode}: {done.stderr}")
        return done

    def add_user(self, name: str, role: str, password: str, unit: str | None = None) -> None:
        unit_args = ["--unit", unit] if unit else []
        self.command(
            "centre-user", str(self.config_path), name, "--role", role, *unit_args, "--password-env", "PW", env={"PW": password}
        )

    def start(self, *extra: str, web: bool = True) -> "Centre":
        args = [*DETECTOR, "centre", str(self.config_path), *extra] + ([] if web else ["--no-web"])
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env)
        ready = threading.Event()

        def read() -> None:
            for line in self.process.stdout:
                self.output.append(line)
                found = re.search(r"web pages on (http://\S+)", line)
                if found:
                    self.url = found.group(1).rstrip("/")
                if found or (not web and "ingest from mqtt" in line):
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + 60
        while not ready.is_set():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the centre did not start: {''.join(self.output)[-3000:]}")
            ready.wait(0.1)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill() if kill else self.process.terminate()
            self.process.wait(30)
        self.process = None

    @property
    def log(self) -> str:
        return "".join(self.output)
