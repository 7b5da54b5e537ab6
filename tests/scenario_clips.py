"""The scenario clips of scripts/make_scenarios.py, generated on demand (skipped when up to date)."""

import importlib.util
import sys
from pathlib import Path

from conftest import ROOT, asset


def generator():
    """scripts/make_scenarios.py as a module, loaded once (scripts/ is not a package)."""
    module = sys.modules.get("make_scenarios")
    if module is None:
        spec = importlib.util.spec_from_file_location("make_scenarios", ROOT / "scripts/make_scenarios.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
        spec.loader.exec_module(module)
    return module


def scenario_clip(name: str) -> Path:
    """sample_videos/generated/<name>.mp4 (its ground truth is the .gt.yaml next to it)."""
    for source in ("clips/vtest.avi", "clips/person-bicycle-car-detection.gif", "stills/fruits.jpg"):
        asset(f"sample_videos/{source}")
    return generator().generate(name)
