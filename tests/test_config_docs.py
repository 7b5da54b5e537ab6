"""docs/config.md and `detector check --schema` both come from the config schema: the page is
current, every key is described, and the JSON Schema accepts the shipped configs."""

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml
from conftest import ROOT

from detector.centre.config import CentreConfig, load_centre_config
from detector.config.reference import CENTRE_HEADER, json_schema, render_markdown

DETECTOR = Path(sys.executable).with_name("detector")  # the installed command, as a user runs it


def run_detector(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(DETECTOR), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_config_md_is_current():
    assert (ROOT / "docs/config.md").read_text(encoding="utf-8") == render_markdown(), (
        "docs/config.md is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )
    assert (ROOT / "docs/centre-config.md").read_text(encoding="utf-8") == render_markdown(CentreConfig, CENTRE_HEADER), (
        "docs/centre-config.md is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def test_the_centre_demo_config_loads(monkeypatch):
    monkeypatch.delenv("DEMO_MQTT_PORT", raising=False)
    config = load_centre_config(ROOT / "configs/centre-demo.yaml")
    assert (config.mqtt.port, config.web.port, config.database.engine) == (18830, 8080, "sqlite")


@pytest.mark.parametrize("model", [None, CentreConfig])
def test_every_key_has_a_description(model):
    schema = json_schema() if model is None else json_schema(model)
    models = {"top level": schema, **schema["$defs"]}
    undescribed = [
        f"{name}.{key}"
        for name, model in models.items()
        for key, field in model.get("properties", {}).items()
        if not field.get("description", "").strip()
    ]
    assert not undescribed, f"fields without a description (Field(description=...)): {', '.join(undescribed)}"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    result = run_detector("check", "--schema")
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "detector config"
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("config", ["configs/demo.yaml", "configs/example.yaml"])
def test_schema_accepts_the_shipped_configs(validator, config):
    document = yaml.safe_load((ROOT / config).read_text(encoding="utf-8"))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda c: c.update(sitee="x"), []),
        (lambda c: c["cameras"][0]["zones"][0].update(dwel_s=5), ["cameras", 0, "zones", 0]),
        (lambda c: c["cameras"][0]["zones"][0].update(violations=["jaywalking"]), ["cameras", 0, "zones", 0, "violations", 0]),
    ],
    ids=["unknown top-level key", "unknown zone key", "unknown violation type"],
)
def test_schema_rejects_mistakes(validator, edit, path):
    document = yaml.safe_load((ROOT / "configs/demo.yaml").read_text(encoding="utf-8"))
    edit(document)
    assert [list(e.absolute_path) for e in validator.iter_errors(document)] == [path]


def test_check_without_config_or_schema_is_a_config_error():
    result = run_detector("check")
    assert result.returncode == 2
    assert result.stderr.strip() == "detector: error: give a CONFIG (or --schema)"
