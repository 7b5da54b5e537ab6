"""The zone editor in a real headless browser (Debian's chromium driven by Playwright): draw a
polygon by clicking on the frame, name it, pick a type, save; the YAML on disk has the zone at
the clicked normalised coordinates with its comments intact. Bad edits show an error on the
page and leave the file byte for byte unchanged. Also the YAML round trip on the real configs."""

import json
import re
import shutil
import threading
import urllib.request

import pytest
import yaml
from conftest import ROOT, SCREENSHOTS, asset

from detector.operator.yaml_edit import ConfigDocument
from detector.operator.zone_editor import ZoneEditor, make_server

SCREENSHOT_COPY = SCREENSHOTS / "zone-editor.png"

CONFIG = """\
# Test site: one street camera (comments must survive the editor)
site: test-site
model: {path: MODEL, threads: 1}   # the bundled nano model
detect: {fps: 2, min_score: 0.35}

cameras:
  - id: street
    source: CLIP
    zones:
      # the gate: vans unload here
      - id: gate                 # keep clear
        polygon: [[0.10, 0.50], [0.30, 0.50], [0.30, 0.70], [0.10, 0.70]]
        violations: [illegal_parking]
        grace_s: 15              # zone-level key the editor does not manage
  - id: other                    # a second camera, untouched
    source: CLIP
"""


@pytest.fixture()
def config_file(tmp_path):
    clip = asset("sample_videos/clips/vtest.avi")  # 768x576
    model = asset("models/yolov8n.onnx")
    path = tmp_path / "site.yaml"
    path.write_text(CONFIG.replace("MODEL", str(model)).replace("CLIP", str(clip)))
    return path


@pytest.fixture()
def editor_url(config_file):
    server = make_server(ZoneEditor(config_file, "street"), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture()
def page(browser, editor_url):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(editor_url)
    page.wait_for_selector("#canvas[data-ready='1']", timeout=15000)
    yield page
    page.close()


def draw_zone(page, points_px, name, violation):
    page.click("#new-zone")
    for x, y in points_px:
        page.locator("#canvas").click(position={"x": x, "y": y})
    page.click("#finish")
    page.fill("#zone-id", name)
    page.check(f"input[name=violation][value={violation}]")


def flat(points):
    return [v for point in points for v in point]


def comment_lines(text):
    return [line.strip() for line in text.splitlines() if "#" in line]


def test_draw_name_save_writes_the_zone_and_keeps_comments(page, config_file, tmp_path):
    before = config_file.read_text()
    box = page.locator("#canvas").bounding_box()
    assert (box["width"], box["height"]) == (768, 576)  # the frame at its own size: 1 px = 1/768
    clicks = [(461, 288), (653, 288), (653, 461), (461, 461)]
    draw_zone(page, clicks, "kerb-east", "illegal_parking")
    page.fill("#zone-dwell", "45")
    page.fill("#zone-schedule", "Mon-Fri 07:00-20:00")
    page.click("#save")
    page.wait_for_selector("#status:has-text('Saved 2 zones')", timeout=15000)
    assert page.inner_text("#errors") == ""

    after = config_file.read_text()
    street = next(c for c in yaml.safe_load(after)["cameras"] if c["id"] == "street")
    new = next(z for z in street["zones"] if z["id"] == "kerb-east")
    expected = [[x / 768, y / 576] for x, y in clicks]
    assert flat(new["polygon"]) == pytest.approx(flat(expected), abs=0.01)
    assert new["violations"] == ["illegal_parking"]
    assert new["dwell_s"] == 45 and new["schedule"] == ["Mon-Fri 07:00-20:00"]
    # the rest of the file as it was: every comment, the untouched zone's exact text, key order
    assert comment_lines(after) == comment_lines(before)
    assert after.startswith(before.split("  - id: other")[0])
    assert after.rstrip().endswith(
        "  - id: other                    # a second camera, untouched\n    source: "
        + str(asset("sample_videos/clips/vtest.avi"))
    )

    page.locator("#frame").fill("200")  # the slider: frame 200 decoded server-side, 20 s in
    page.wait_for_selector("#canvas[data-frame='200']", timeout=15000)
    assert page.inner_text("#frame-label") == "frame 200 · 20.0 s"
    screenshot = tmp_path / "zone-editor.png"
    page.screenshot(path=str(screenshot))
    SCREENSHOT_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(screenshot, SCREENSHOT_COPY)
    assert screenshot.stat().st_size > 10_000


def test_drag_a_vertex_and_delete_a_zone(page, config_file):
    # gate's first corner is at (0.10, 0.50) -> (76.8, 288) px; drag it to (115, 230)
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 76.8, box["y"] + 288)
    page.mouse.down()
    page.mouse.move(box["x"] + 100, box["y"] + 250, steps=4)
    page.mouse.move(box["x"] + 115, box["y"] + 230, steps=4)
    page.mouse.up()
    draw_zone(page, [(400, 100), (500, 100), (450, 180)], "scratch", "stray_garbage")
    page.click("#delete-zone")  # deletes the selected (new) zone again
    page.click("#save")
    page.wait_for_selector("#status:has-text('Saved 1 zones')", timeout=15000)
    gate = yaml.safe_load(config_file.read_text())["cameras"][0]["zones"][0]
    assert gate["polygon"][0] == pytest.approx([115 / 768, 230 / 576], abs=0.01)
    assert gate["polygon"][1:] == [[0.30, 0.50], [0.30, 0.70], [0.10, 0.70]]
    assert gate["grace_s"] == 15  # a key the editor does not manage stays
    assert "# keep clear" in config_file.read_text()


@pytest.mark.parametrize(
    "points, name, message",
    [
        ([(100, 100), (300, 100)], "two-corners", "a polygon needs at least 3 points, got 2"),
        ([(100, 100), (300, 300), (300, 100), (100, 300)], "bow-tie", "the outline must not cross or touch itself"),
        ([(400, 100), (500, 100), (450, 180)], "gate", "zone id 'gate' is used twice"),
        (
            [(400, 100), (500, 100), (450, 180)],
            "bad name!",
            "cameras.street.zones.bad name!.id: 'bad name!': String should match pattern",
        ),
    ],
)
def test_a_bad_edit_shows_the_error_and_leaves_the_file_unchanged(page, config_file, points, name, message):
    before = config_file.read_bytes()
    draw_zone(page, points, name, "illegal_parking")
    page.click("#save")
    page.wait_for_selector("#errors:not(:empty)", timeout=15000)
    assert message in page.inner_text("#errors")
    assert page.inner_text("#status") == ""
    assert config_file.read_bytes() == before
    assert [p.name for p in config_file.parent.iterdir()] == [config_file.name]  # no temporary left


def test_api_refuses_a_stale_version_and_foreign_hosts(editor_url, config_file):
    state = json.load(urllib.request.urlopen(editor_url + "api/config"))
    assert state["frames"]["count"] > 700 and state["frames"]["width"] == 768
    config_file.write_text(config_file.read_text() + "\n# edited elsewhere\n")
    body = json.dumps({"version": state["version"], "zones": state["zones"]}).encode()
    token = re.search(r'name="detector-token" content="([^"]+)"', urllib.request.urlopen(editor_url).read().decode())[1]
    headers = {"Content-Type": "application/json", "X-Detector-Token": token}
    request = urllib.request.Request(editor_url + "api/save", body, headers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 409 and "changed on disk" in refused.value.read().decode()
    frame = urllib.request.urlopen(editor_url + "api/frame?n=100")
    assert frame.headers["Content-Type"] == "image/jpeg" and frame.read(2) == b"\xff\xd8"
    foreign = urllib.request.Request(editor_url + "api/config", headers={"Host": "evil.example:80"})
    with pytest.raises(urllib.error.HTTPError) as forbidden:
        urllib.request.urlopen(foreign)
    assert forbidden.value.code == 403


@pytest.mark.parametrize("name", ["demo.yaml", "example.yaml", "scenarios.yaml"])
def test_round_trip_of_the_shipped_configs_is_exact(name):
    text = (ROOT / "configs" / name).read_text()
    assert ConfigDocument(text, name).dump() == text


def test_shared_zone_list_stays_one_anchor():
    """scenarios.yaml aliases parking-stop's zones into the other vtest scenario cameras: an edit stays shared."""
    text = (ROOT / "configs/scenarios.yaml").read_text()
    document = ConfigDocument(text, "scenarios.yaml")
    shared = document.shared_with("parking-stop")
    assert all(name.startswith("nuisance-") for name in shared[7:])  # the robustness suite's cameras
    assert shared[:7] == [
        "parking-brief",
        "vending-stall",
        "vending-person-only",
        "garbage-drop",
        "garbage-pickup",
        "nonmotor-parked",
        "nonmotor-ridden",
    ]
    # zones after the first three are kept as they are
    kept = [{"orig_id": z["id"], **z} for z in yaml.safe_load(text)["cameras"][0]["zones"][3:]]
    zones = [
        {
            "orig_id": "no-parking",
            "id": "no-parking",
            "polygon": [[0.64, 0.5], [0.9, 0.5], [0.9, 0.7], [0.64, 0.7]],
            "violations": ["illegal_parking"],
        },
        {
            "orig_id": "garbage",
            "id": "garbage",
            "polygon": [[0.70, 0.83], [0.99, 0.83], [0.99, 0.99], [0.70, 0.99]],
            "violations": ["stray_garbage"],
        },
        *kept,
    ]
    document.set_zones("parking-stop", zones)
    out = document.dump()
    cameras = {c["id"]: c for c in yaml.safe_load(out)["cameras"]}
    assert [z["id"] for z in cameras["garbage-drop"]["zones"]] == ["no-parking", "garbage", *(z["id"] for z in kept)]
    assert cameras["garbage-drop"]["zones"][0]["polygon"][1] == [0.9, 0.5]
    assert (out.count("&vtest-zones"), out.count("*vtest-zones")) == (text.count("&vtest-zones"), text.count("*vtest-zones"))
    # only the edited line and the removed zone changed
    removed = [line for line in text.splitlines() if line not in out.splitlines()]
    assert len(removed) == 4 and "id: vending" in removed[1]
    assert "- id: garbage              # the grass at the bottom right" in out
