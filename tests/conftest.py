"""Shared fixtures: project paths and the real assets (fetched by scripts/setup.sh)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = ROOT / "out/screenshots"  # copies for people to look at (gitignored)
CHROMIUM = Path("/usr/bin/chromium")
# Debian's chromium, headless, offline: without the background-networking flags it keeps trying
# to reach Google's hosts, which this network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def asset(relative: str) -> Path:
    path = ROOT / relative
    if not path.is_file():
        pytest.fail(f"{relative} is missing: run scripts/setup.sh (it fetches models and clips)")
    return path


def start_run(config: Path, log: Path) -> subprocess.Popen:
    """A real `detector --log-format kv run CONFIG` (supervisor and workers), its output in `log`."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "detector", "--log-format", "kv", "run", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for(predicate, timeout: float, what: str):
    """predicate()'s first truthy value, polled every 50 ms; the test fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


def require(condition: bool, why: str) -> None:
    """Skip a test whose system dependency is missing on a developer's machine; in CI (where
    scripts/test.sh installs everything) a missing dependency is a failure, never a skip."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI must have it: scripts/test.sh installs it)")
        pytest.skip(why)


@pytest.fixture(scope="session")
def browser():
    """A real headless chromium driven by Playwright (never a downloaded browser)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "playwright is not installed: pip install -e '.[test]'")
    require(CHROMIUM.exists(), "chromium is not installed: apt-get install chromium")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def make_alert(**fields):
    """A complete detector.alert/1 `Alert` for tests that need one without a model; `fields` override."""
    from detector.alerts import Alert, AlertEvent, AlertObject, ModelStamp

    values = {
        "id": "0192f0c2-7a1b-7c3d-8e4f-0123456789ab",
        "seq": 1,
        "event": AlertEvent.START,
        "type": "illegal_parking",
        "site": "site",
        "camera": "cam",
        "zone": "kerb",
        "first_seen_s": 0.0,
        "stream_time_s": 0.0,
        "first_seen_at": "2026-05-01T07:00:00.000Z",
        "at": "2026-05-01T07:00:00.000Z",
        "confidence": 0.8,
        "objects": (AlertObject("car", 0.8, (0.1, 0.2, 0.3, 0.4), 1),),
        "model": ModelStamp("synthetic", "0" * 64),
        "config_sha256": "0" * 64,
        "gap_s": 0.0,
    }
    values.update(fields)
    values["event"] = AlertEvent(values["event"])
    return Alert(**values)
