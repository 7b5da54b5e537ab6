"""Config loading: every mistake gives one message naming the key path."""

import textwrap

import pytest
from conftest import ROOT

from detector.config import ViolationType, check_files, load_config
from detector.config.schema import Anchor, ViewConfig
from detector.errors import ConfigError

VALID = """
site: test-site
model: {path: models/yolov8n.onnx}
cameras:
  - id: cam-01
    source: sample_videos/clips/vtest.avi
    zones:
      - id: gate
        polygon: [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]
        violations: [illegal_parking]
"""


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def edit(old: str, new: str) -> str:
    assert old in VALID
    return VALID.replace(old, new)


def test_valid_config_loads_with_defaults(tmp_path):
    config = load_config(write(tmp_path, VALID))
    zone = config.cameras[0].zones[0]
    assert zone.anchor is Anchor.BOTTOM_CENTER
    parking = zone.settings_for(ViolationType.ILLEGAL_PARKING, config.violations, config.detect)
    assert (parking.dwell_s, parking.min_score) == (60, 0.35)


def test_zone_overrides_type_defaults(tmp_path):
    config = load_config(
        write(
            tmp_path,
            edit("violations: [illegal_parking]", "violations: [illegal_parking]\n        dwell_s: 20\n        min_score: 0.5"),
        )
    )
    settings = config.cameras[0].zones[0].settings_for(ViolationType.ILLEGAL_PARKING, config.violations, config.detect)
    assert (settings.dwell_s, settings.grace_s, settings.min_score) == (20, 10, 0.5)


# top-level `view:`, the camera's `view:` -> the camera's effective view settings that differ from the defaults
VIEW_MERGE = {
    "no view anywhere": (None, None, {}),
    "top level only": ("{hold_s: 8, resume: operator}", None, {"hold_s": 8, "resume": "operator"}),
    "camera only": (None, "{resume: operator}", {"resume": "operator"}),
    "camera over top level, key by key": (
        "{hold_s: 8, min_match: 0.2}",
        "{hold_s: 2, resume: operator}",
        {"hold_s": 2, "min_match": 0.2, "resume": "operator"},
    ),
    "camera turns it off": ("{hold_s: 8}", "{enabled: false}", {"hold_s": 8, "enabled": False}),
    "camera's explicit default wins over the top level": ("{resume: operator}", "{resume: auto}", {}),
    "empty camera view": ("{hold_s: 8}", "{}", {"hold_s": 8}),
}


@pytest.mark.parametrize("top, camera, expected", VIEW_MERGE.values(), ids=VIEW_MERGE.keys())
def test_camera_view_overrides_the_top_level_key_by_key(tmp_path, top, camera, expected):
    text = VALID + (f"view: {top}\n" if top else "")
    if camera:
        text = text.replace("    zones:\n", f"    view: {camera}\n    zones:\n")
    config = load_config(write(tmp_path, text))
    effective = config.cameras[0].view_settings(config.view)
    defaults = ViewConfig().model_dump()
    assert {k: v for k, v in effective.model_dump().items() if v != defaults[k]} == expected
    assert config.view.resume == ("operator" if top and "operator" in top else "auto")  # the top level is left as it was


def camera_view(value: str) -> str:
    return edit("    zones:\n", f"    view: {value}\n    zones:\n")


ERRORS = {
    "unknown top-level key": (edit("site: test-site", "site: test-site\nsiet: typo"), "siet: unknown key"),
    "unknown zone key named by ids": (
        edit("violations: [illegal_parking]", "violations: [illegal_parking]\n        dwel_s: 5"),
        "cameras.cam-01.zones.gate.dwel_s: unknown key",
    ),
    "wrong type": (
        edit("site: test-site", "site: test-site\ndetect: {fps: fast}"),
        "detect.fps: 'fast': Input should be a valid number",
    ),
    "polygon with two points": (
        edit("[[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]", "[[0.1, 0.1], [0.5, 0.1]]"),
        "cameras.cam-01.zones.gate.polygon: a polygon needs at least 3 points, got 2",
    ),
    "polygon outside 0..1": (
        edit("[0.5, 0.5]]", "[1.5, 0.5]]"),
        "cameras.cam-01.zones.gate.polygon: point 2 [1.5, 0.5] is outside 0..1",
    ),
    "unknown violation type": (
        edit("[illegal_parking]", "[double_parking]"),
        "cameras.cam-01.zones.gate.violations[0]: 'double_parking': Input should be 'illegal_parking', 'street_vending', 'stray_garbage' or 'nonmotor_parking'",
    ),
    "missing required key": (edit("model: {path: models/yolov8n.onnx}\n", ""), "model: required key is missing"),
    "bad schedule": (
        edit("violations: [illegal_parking]", "violations: [illegal_parking]\n        schedule: ['Mon-Fry 07:00-20:00']"),
        "unknown day 'Fry'",
    ),
    "negative dwell": (
        edit("violations: [illegal_parking]", "violations: [illegal_parking]\n        dwell_s: -1"),
        "cameras.cam-01.zones.gate.dwell_s: -1: Input should be greater than or equal to 0",
    ),
    "duplicate zone ids": (
        VALID + "      - id: gate\n        polygon: [[0, 0], [1, 0], [1, 1]]\n        violations: [stray_garbage]\n",
        "zone id 'gate' is used twice",
    ),
    "unknown time zone": (
        edit("site: test-site", "site: test-site\ntimezone: Mars/Olympus"),
        "timezone: 'Mars/Olympus': unknown time zone",
    ),
    "missing environment variable": (
        edit("sample_videos/clips/vtest.avi", "rtsp://admin:${NO_SUCH_VAR_X}@cam/1"),
        "cameras.cam-01.source: environment variable NO_SUCH_VAR_X is not set",
    ),
    "camera view: unknown resume": (
        camera_view("{resume: never}"),
        "cameras.cam-01.view.resume: 'never': Input should be 'auto' or 'operator'",
    ),
    "camera view: negative hold": (
        camera_view("{hold_s: -1}"),
        "cameras.cam-01.view.hold_s: -1: Input should be greater than or equal to 0",
    ),
    "camera view: out of bounds as at the top level": (
        camera_view("{max_shift: 0}"),
        "cameras.cam-01.view.max_shift: 0: Input should be greater than 0",
    ),
    "camera view: unknown key": (camera_view("{hold: 3}"), "cameras.cam-01.view.hold: unknown key"),
    "camera view: not a mapping": (
        camera_view("operator"),
        "cameras.cam-01.view: 'operator': Input should be a valid dictionary",
    ),
    "not a mapping": ("- just\n- a list\n", "expected a mapping at the top level"),
    "not YAML": ("site: [unclosed\n", "not valid YAML"),
}


@pytest.mark.parametrize("text, message", ERRORS.values(), ids=ERRORS.keys())
def test_config_errors_name_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert message in str(error.value)


def test_all_problems_reported_at_once(tmp_path):
    text = edit("site: test-site", "site: test-site\nfoo: 1\nbar: 2")
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert "2 problems" in str(error.value) and "foo: unknown key" in str(error.value) and "bar: unknown key" in str(error.value)


def test_environment_secrets_are_substituted_and_never_echoed(tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "s3cret!")
    config = load_config(write(tmp_path, edit("sample_videos/clips/vtest.avi", "rtsp://admin:${CAM_PASSWORD}@cam/1")))
    assert config.cameras[0].source == "rtsp://admin:s3cret!@cam/1"
    bad = edit("sample_videos/clips/vtest.avi", "rtsp://admin:${CAM_PASSWORD}@cam/1").replace("id: cam-01", "id: 'cam 01'")
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, bad))
    assert "s3cret" not in str(error.value)


def test_missing_files_are_named(tmp_path):
    text = edit("models/yolov8n.onnx", "models/nope.onnx").replace("sample_videos/clips/vtest.avi", "nope.mp4")
    with pytest.raises(ConfigError) as error:
        check_files(load_config(write(tmp_path, text)))
    assert "model.path: models/nope.onnx: file not found" in str(error.value)
    assert "cameras.cam-01.source: nope.mp4: file not found" in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_the_documented_example_config_is_valid():
    config = load_config(ROOT / "configs/example.yaml")
    assert config.mqtt is not None and len(config.cameras[0].zones) == 2


def test_file_check_can_be_limited_to_some_cameras(tmp_path):
    text = (
        VALID.replace("sample_videos/clips/vtest.avi", "nope.mp4") + "  - id: cam-02\n    source: sample_videos/clips/vtest.avi\n"
    )
    config = load_config(write(tmp_path, text))
    check_files(config, cameras=["cam-02"])  # cam-01's missing clip does not matter to cam-02
    with pytest.raises(ConfigError, match="cameras.cam-01.source"):
        check_files(config, cameras=["cam-01"])
