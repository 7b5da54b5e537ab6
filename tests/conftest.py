"""Shared fixtures: project paths and the real assets (fetched by scripts/setup.sh)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def asset(relative: str) -> Path:
    path = ROOT / relative
    if not path.is_file():
        pytest.fail(f"{relative} is missing: run scripts/setup.sh (it fetches models and clips)")
    return path
