"""Fuzzing the readers of outside input (Hypothesis, derandomized: the same examples on every run).

- the config loader: any text, and structured or textual mutations of configs/demo.yaml, give an
  AppConfig or a ConfigError (never another exception) within a time bound per example; through
  the command line a few of them give exit 0, or one `detector: error:` and a non-zero exit;
- the payload readers: any JSON or bytes give an Alert (or, for events files and ground truth,
  their value) or a ValueError, nothing else.
"""

import json
import subprocess
import sys
from datetime import timedelta

import pytest
import yaml
from conftest import ROOT, make_alert
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.alerts import Alert
from detector.config import AppConfig, load_config
from detector.errors import ConfigError
from detector.scoring import GroundTruth, load_events, parse_ground_truth

# Same examples every run (CI reproducible), no example database, a hard time bound per example.
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=2),
    max_examples=150,
    suppress_health_check=[HealthCheck.too_slow],
)

DEMO_TEXT = (ROOT / "configs/demo.yaml").read_text()
DEMO = yaml.safe_load(DEMO_TEXT)
GROUND_TRUTH = {
    "clip": "vtest.avi",
    "camera": "vtest",
    "events": [{"type": "illegal_parking", "zone": "van", "begin_s": 3, "end_s": None}],
}

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)
# pieces of YAML syntax, so that random texts reach the parser's corners, not only its first check
YAML_PIECES = ["a", "id", "cameras", ":", ": ", " ", "  ", "\n", "- ", "[", "]", "{", "}", ",", "&x ", "*x", "<<: ", "? ",
               "!!int ", "!!bool ", "!!binary ", "!!set ", "!!python/name:os.system", "'", '"', "#", "|", ">", "%YAML 1.1\n",
               "---\n", "...\n", "0", "1.5", "1e400", ".nan", "null", "~", "yes", "2024-13-45", "2024-01-01 25:00:00",
               "0x1F", "\t", "\\", "\x00", "\ufeff", "\U0001f600"]  # fmt: skip
yaml_like_texts = st.lists(st.sampled_from(YAML_PIECES), max_size=60).map("".join)


def paths(node, prefix=()):
    """Every path into a parsed document (keys and list indices), the root included."""
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        yield from paths(child, (*prefix, key))


@st.composite
def mutations(draw, document):
    """A copy of `document` with one value replaced, one key dropped or one key or item added."""
    document = json.loads(json.dumps(document))  # a deep copy
    *parents, last = draw(st.sampled_from(list(paths(document))[1:]))
    parent = document
    for key in parents:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace":
        parent[last] = draw(json_values)
    elif action == "drop":
        del parent[last]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(json_values)
    else:
        parent.insert(last, draw(json_values))
    return document


@st.composite
def config_texts(draw):
    """Arbitrary texts, YAML-like texts, the demo with a slice replaced, and mutated demo documents."""
    kind = draw(st.sampled_from(["text", "yaml-like", "spliced demo", "mutated demo"]))
    if kind == "text":
        return draw(st.text(max_size=300))
    if kind == "yaml-like":
        return draw(yaml_like_texts)
    if kind == "spliced demo":
        start = draw(st.integers(0, len(DEMO_TEXT)))
        end = draw(st.integers(start, min(len(DEMO_TEXT), start + 40)))
        return DEMO_TEXT[:start] + draw(yaml_like_texts) + DEMO_TEXT[end:]
    return yaml.safe_dump(draw(mutations(DEMO)), allow_unicode=True)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@settings(FUZZ, max_examples=400)
@given(text=config_texts())
def test_load_config_gives_a_config_or_a_config_error(fuzz_dir, text):
    path = fuzz_dir / "config.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        assert isinstance(load_config(path), AppConfig)
    except ConfigError as exc:
        assert str(exc).strip()


@settings(FUZZ, max_examples=4, deadline=None)
@given(document=mutations(DEMO))
def test_check_command_on_mutated_configs(fuzz_dir, document):
    path = fuzz_dir / "cli.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True))
    result = subprocess.run(
        [sys.executable, "-m", "detector", "check", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert "Traceback" not in result.stderr, result.stderr
    if result.returncode != 0:
        assert result.returncode == 2 and result.stderr.startswith("detector: error:"), result.stderr


PAYLOAD = make_alert().to_json()


@FUZZ
@given(data=st.one_of(json_values, mutations(PAYLOAD)))
def test_alert_from_json_gives_an_alert_or_a_value_error(data):
    try:
        alert = Alert.from_json(data)
    except ValueError:
        return
    assert Alert.from_json(alert.to_json()) == alert


@FUZZ
@given(body=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode())))
def test_alert_from_bytes_gives_an_alert_or_a_value_error(body):
    try:
        Alert.from_bytes(body)
    except ValueError:
        pass


HUGE = b"1" + b"0" * 400  # an integer beyond any float


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000,  # json's decoder recurses per level
        b'{"a":' * 100_000,
        b"\xff\xfe",
        b"NaN",
        b"",
        json.dumps(PAYLOAD).replace('"stream_time_s": 0.0', '"stream_time_s": NaN').encode(),
        json.dumps(PAYLOAD).replace('"confidence": 0.8', '"confidence": Infinity').encode(),
        json.dumps(PAYLOAD).replace('"first_seen_s": 0.0', '"first_seen_s": ' + HUGE.decode()).encode(),
    ],
)
def test_alert_from_bytes_edge_cases(body):
    with pytest.raises(ValueError):
        Alert.from_bytes(body)


@pytest.mark.parametrize("begin", [int(HUGE), float("nan"), float("inf"), True, "3"])
def test_ground_truth_edge_cases(begin):
    with pytest.raises(ValueError, match=r"gt.yaml: events\[0\].begin_s: must be a number"):
        parse_ground_truth({"events": [{"type": "illegal_parking", "begin_s": begin}]}, "gt.yaml")


@FUZZ
@given(lines=st.lists(st.one_of(st.text(max_size=80), mutations(PAYLOAD).map(json.dumps)), max_size=5))
def test_load_events_gives_alerts_or_a_value_error(fuzz_dir, lines):
    path = fuzz_dir / "events.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    warnings: list[str] = []
    lenient = load_events(path, warnings=warnings)
    assert all(isinstance(a, Alert) for a in lenient)
    try:
        strict = load_events(path, strict=True)
    except ValueError:
        assert warnings  # strict refuses exactly what the lenient reading skips
    else:
        assert strict == lenient and not warnings


@FUZZ
@given(data=st.one_of(json_values, mutations(GROUND_TRUTH)))
def test_ground_truth_parser_gives_ground_truth_or_a_value_error(data):
    try:
        assert isinstance(parse_ground_truth(data, "gt.yaml"), GroundTruth)
    except ValueError as exc:
        assert str(exc).startswith("gt.yaml")


# ------------------------------------------------------------------------------ detector listen


LISTEN_KINDS = ("alert", "status", "zone/z/state", "health", "snapshot/x", "other")
NESTED = b"[" * 100_000 + b"]" * 100_000


@settings(FUZZ, max_examples=200)
@given(
    kind=st.sampled_from(LISTEN_KINDS),
    payload=st.one_of(st.binary(max_size=300), st.just(NESTED), json_values.map(lambda v: json.dumps(v).encode())),
    as_json=st.booleans(),
)
def test_listen_prints_whatever_is_published_without_crashing(kind, payload, as_json):
    """Anyone may publish under the prefix: every message is printed or called malformed."""
    import io

    from detector.mqtt.listen import Printer

    out = io.StringIO()
    Printer("detector", as_json=as_json, health=True, out=out).message(f"detector/site/cam/{kind}", payload, False)
