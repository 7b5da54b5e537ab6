"""The whole loop through the management centre (issue 13), on real parts: a real `detector
replay` of the demo publishes its alert to a real mosquitto; the real centre (`detector centre`
on a real PostgreSQL) makes it a case; in Debian's chromium a dispatcher sees it arrive in the
live list, confirms and dispatches it, an officer accepts and handles it on the phone page with
a note and a photo, the dispatcher closes it, and the figures and the Open311 view show it.
Then what each role may not do."""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import cv2
import numpy as np
import paho.mqtt.publish as publish
import pytest
import yaml
from centre_process import DB_PASSWORD, OPEN311_KEY, Centre
from conftest import ROOT, SCREENSHOTS, asset, make_alert, wait_for
from mqtt_broker import PASSWORD as BROKER_PASSWORD
from mqtt_broker import USER as BROKER_USER
from mqtt_broker import Mosquitto, needs_mosquitto
from postgres_server import needs_postgres, postgres_fixture  # noqa: F401

from detector.scoring import load_events

pytestmark = [needs_mosquitto, needs_postgres, pytest.mark.timeout(300)]
PASSWORDS = {
    "ada": "admin-Pa55-2026-x",
    "alice": "dispatch-Pa55-2026",
    "bob": "officer-Pa55-north",
    "carl": "officer-Pa55-south",
    "vera": "viewer-Pa55-2026",
}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


@pytest.fixture(scope="module")
def district(tmp_path_factory, postgres):
    """A broker, the centre on PostgreSQL with the demo's zones, and four users."""
    folder = tmp_path_factory.mktemp("district")
    broker = Mosquitto(folder / "broker").start()
    asset("sample_videos/clips/vtest.avi")
    edge = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    edge["mqtt"] = broker.mqtt_section(snapshots=True)
    edge["storage_dir"] = str(folder / "edge")
    edge_config = folder / "demo-edge.yaml"
    edge_config.write_text(yaml.safe_dump(edge))
    centre = Centre(folder / "centre", broker, postgres, edge_configs=[str(edge_config)])
    for name, role, unit in (
        ("ada", "admin", None),
        ("alice", "dispatcher", None),
        ("bob", "officer", "north"),
        ("carl", "officer", "south"),
        ("vera", "viewer", None),
    ):
        centre.add_user(name, role, PASSWORDS[name], unit)
    centre.start()
    yield {"centre": centre, "broker": broker, "edge_config": edge_config, "postgres": postgres, "folder": folder}
    centre.stop()
    broker.stop()


def log_in(browser, centre: Centre, name: str, **context_options):
    page = browser.new_context(**context_options).new_page()
    page.goto(f"{centre.url}/login/")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert "/login/" not in page.url, f"{name} could not log in: {page.inner_text('main')}"
    return page


def move(page, to: str) -> None:
    page.click(f"form.move[data-to={to}] button[type=submit]")
    page.wait_for_load_state()


def state_of(page) -> str:
    return page.inner_text("#case-state").strip()


def history(page) -> list[list[str]]:
    return [[c.strip() for c in row.split("\t")] for row in page.locator("#history tbody tr").all_inner_texts()]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as answer:
        return answer.status, json.loads(answer.read())


def test_an_alert_becomes_a_case_that_is_dispatched_handled_and_closed(browser, district, tmp_path):
    centre: Centre = district["centre"]
    desk = log_in(browser, centre, "alice", viewport={"width": 1280, "height": 900})
    desk.goto(f"{centre.url}/cases/")
    assert desk.locator("tr.case-row").count() == 0

    replay = subprocess.run(
        [sys.executable, "-m", "detector", "replay", str(district["edge_config"]), "--camera", "vtest", "--out", str(tmp_path / "out"), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert "1 alerts, 1 events" in replay.stdout
    alert = json.loads((tmp_path / "out" / "events.jsonl").read_text().splitlines()[0])

    # the live list shows the new case without a reload
    desk.wait_for_selector("tr.case-row", timeout=30_000)
    row = desk.locator("tr.case-row").first
    assert "illegal_parking" in row.inner_text() and "van-no-parking" in row.inner_text() and "NEW" in row.inner_text()
    case_id = int(row.get_attribute("data-case"))

    # the case page: the evidence (its sha256 checked at ingest) with the zone and the boxes drawn
    desk.click(f"tr.case-row[data-case='{case_id}'] a")
    desk.wait_for_selector(".evidence img")
    assert desk.evaluate("document.querySelector('.evidence img').naturalWidth") == 768
    assert desk.locator(".evidence polygon.zone").count() == 1
    assert desk.locator(".evidence rect.box").count() == len(alert["objects"])
    assert alert["id"][:10] in desk.inner_text("#timeline")
    assert state_of(desk) == "NEW"

    move(desk, "CONFIRMED")
    assert state_of(desk) == "CONFIRMED"
    desk.select_option("form.move[data-to=DISPATCHED] select[name=unit]", label="north")
    move(desk, "DISPATCHED")
    assert state_of(desk) == "DISPATCHED"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    desk.screenshot(path=str(SCREENSHOTS / "centre-case.png"), full_page=True)

    # an officer of another unit sees nothing of it, not even by its number
    south = log_in(browser, centre, "carl", **PHONE)
    assert south.locator("#no-cases").count() == 1
    assert south.goto(f"{centre.url}/cases/{case_id}/").status == 404

    # the officer of the unit handles it on his phone: accept, note, photo, handled
    phone = log_in(browser, centre, "bob", **PHONE)
    card = phone.locator(f".card[data-case='{case_id}']")
    assert "illegal_parking" in card.inner_text() and "DISPATCHED" in card.inner_text()
    card.locator("button.accept").click()
    phone.wait_for_load_state()
    photo = tmp_path / "kerb.jpg"
    cv2.imwrite(str(photo), np.full((120, 160, 3), 90, np.uint8))
    card = phone.locator(f".card[data-case='{case_id}']")
    assert "ACCEPTED" in card.inner_text()
    assert card.evaluate("c => c.querySelector('.evidence img').naturalWidth") == 768
    phone.screenshot(path=str(SCREENSHOTS / "centre-officer.png"), full_page=True)
    card.locator("textarea[name=note]").fill("van moved on, driver warned")
    card.locator("input[name=photo]").set_input_files(str(photo))
    card.locator("button.handled").click()
    phone.wait_for_load_state()
    assert phone.locator(f".card[data-case='{case_id}']").count() == 0
    assert f"#{case_id} illegal_parking" in phone.inner_text("main")

    desk.reload()
    assert state_of(desk) == "HANDLED"
    move(desk, "CLOSED")
    assert state_of(desk) == "CLOSED"
    steps = history(desk)
    assert [(s[1].split("→")[-1].strip().split(" ")[0], s[2]) for s in steps] == [
        ("NEW", "system"), ("CONFIRMED", "alice"), ("DISPATCHED", "alice"), ("ACCEPTED", "bob"), ("HANDLED", "bob"), ("CLOSED", "alice"),
    ]  # fmt: skip
    assert "(north)" in steps[2][1] and "van moved on, driver warned" in steps[4][3]
    photo_link = desk.locator("#history a", has_text="photo")
    assert desk.request.get(centre.url + photo_link.get_attribute("href")).body() == photo.read_bytes()

    # the figures count it: opened, closed, dispatched, on time
    desk.goto(f"{centre.url}/figures/?days=1")
    assert desk.inner_text("#opened") == "1"
    assert desk.inner_text("#closure-rate") == "100 %"
    assert desk.inner_text("#false-alarm-rate") == "0 %"
    assert desk.inner_text("#on-time-rate") == "100 %"
    assert desk.inner_text("#dispatch-time").endswith(" s")
    assert desk.locator("#plot-per-day svg").count() == 1 and desk.locator("#plot-dispatch svg").count() == 1
    assert "illegal_parking\t1" in desk.inner_text("#by-type")
    assert "demo-campus/vtest van-no-parking" in desk.inner_text("#by-zone")
    desk.screenshot(path=str(SCREENSHOTS / "centre-figures.png"), full_page=True)

    # the city's systems read it through Open311 with their key
    base = f"{centre.url}/open311/v2/requests.json"
    with pytest.raises(urllib.error.HTTPError) as refused:
        get_json(base)
    assert refused.value.code == 403
    status, requests = get_json(f"{base}?api_key={OPEN311_KEY}&status=closed")
    assert status == 200
    assert [(r["service_request_id"], r["service_code"], r["status"]) for r in requests] == [
        (str(case_id), "illegal_parking", "closed")
    ]


def test_no_page_without_login_and_each_role_only_its_own(browser, district):
    centre: Centre = district["centre"]
    anonymous = browser.new_context().new_page()
    for path in ("/", "/cases/", "/cases/1/", "/officer/", "/fleet/", "/figures/", "/evidence/1.jpg", "/admin/"):
        anonymous.goto(f"{centre.url}{path}")
        assert "/login/" in anonymous.url, path

    wrong = browser.new_context().new_page()
    wrong.goto(f"{centre.url}/login/")
    wrong.fill("input[name=username]", "alice")
    wrong.fill("input[name=password]", "not-her-password")
    wrong.click("button[type=submit]")
    assert "/login/" in wrong.url and "did not match" in wrong.inner_text("main")

    viewer = log_in(browser, centre, "vera")
    case_id = viewer.locator("tr.case-row").first.get_attribute("data-case") if viewer.locator("tr.case-row").count() else "1"
    viewer.goto(f"{centre.url}/cases/{case_id}/")
    assert viewer.locator("form.move").count() == 0
    token = viewer.context.cookies()
    csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
    refused = viewer.request.post(
        f"{centre.url}/cases/{case_id}/move/",
        form={"to": "REOPENED", "csrfmiddlewaretoken": csrf},
        headers={"Referer": centre.url},
    )
    assert refused.status == 403  # a viewer moves nothing
    dispatcher = log_in(browser, centre, "alice")
    no_token = dispatcher.request.post(
        f"{centre.url}/cases/{case_id}/move/", form={"to": "REOPENED"}, headers={"Referer": centre.url}
    )
    assert no_token.status == 403 and "CSRF" in no_token.text()
    officer = log_in(browser, centre, "bob")
    assert officer.goto(f"{centre.url}/figures/").status == 403
    dispatcher.goto(f"{centre.url}/admin/centre/case/")
    assert "/admin/login/" in dispatcher.url  # the admin site is the admin's
    admin = log_in(browser, centre, "ada")
    assert admin.goto(f"{centre.url}/admin/centre/case/").status == 200 and "illegal_parking" in admin.inner_text("#result_list")

    # passwords are argon2 hashes; no secret reaches the log
    hashes = district["postgres"].sql("SELECT password FROM auth_user", "detector").splitlines()
    assert len(hashes) == 5 and all(h.startswith("argon2$argon2id$") for h in hashes)
    for secret in (DB_PASSWORD, *PASSWORDS.values(), centre.env["TEST_CENTRE_SECRET"]):
        assert secret not in centre.log


def test_a_database_it_cannot_reach_is_one_line_naming_it(tmp_path, district):
    config = yaml.safe_load(district["centre"].config_path.read_text())
    config["database"]["port"] = 1  # nothing listens there
    path = tmp_path / "centre.yaml"
    path.write_text(yaml.safe_dump(config))
    done = district["centre"].command("centre", str(path), check=False)
    assert done.returncode == 7
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detector: error: database postgresql detector@127.0.0.1:1/detector")
    assert DB_PASSWORD not in done.stderr


def test_a_rejected_case_becomes_a_false_alarm_the_model_loop_reads(browser, district, tmp_path):
    centre: Centre = district["centre"]
    alert = make_alert(
        id="0192f0c2-7a1b-7c3d-8e4f-00000000fa15", site="demo-campus", camera="vtest", zone="crossing", type="street_vending"
    )
    publish.single("city/demo-campus/vtest/alert", alert.to_bytes(), qos=1, hostname="127.0.0.1", port=district["broker"].port)
    desk = log_in(browser, centre, "alice")
    desk.goto(f"{centre.url}/cases/?type=street_vending")
    desk.wait_for_selector("tr.case-row", timeout=20_000)
    desk.click("tr.case-row a")
    desk.fill("form.move[data-to=REJECTED] input[name=note]", "a parked pram, not a stall")
    move(desk, "REJECTED")
    assert state_of(desk) == "REJECTED" and "false alarm" in desk.inner_text("#timeline")

    out = tmp_path / "false-alarms"
    done = centre.command("centre-false-alarms", str(centre.config_path), "--out", str(out))
    assert done.stdout.startswith("1 false alarm ->")
    assert [a.id for a in load_events(out / "events.jsonl", strict=True)] == [alert.id]
    marks = [json.loads(line) for line in (out / "feedback.jsonl").read_text().splitlines()]
    assert [(m["alert_id"], m["mark"], m["note"]) for m in marks] == [(alert.id, "false_alarm", "a parked pram, not a stall")]
    # the model loop's own command takes the file as it is
    feedback = centre.command("feedback", str(out / "events.jsonl"), alert.id[:13], "--false-alarm")
    assert alert.id in feedback.stdout


def health(camera: str, frame_age_s: float) -> bytes:
    return json.dumps(
        {"schema": "detector.health/1", "site": "demo-campus", "camera": camera, "at": "2026-11-28T08:00:00.000Z", "state": "running",
         "stream": "reconnecting" if frame_age_s > 60 else "connected", "frame_age_s": frame_age_s, "fps_out": 1.0, "open_alerts": 0, "view": None}
    ).encode()  # fmt: skip


def test_the_fleet_page_flags_a_dark_camera_in_red_with_a_maintenance_case(browser, district):
    centre: Centre = district["centre"]
    port = district["broker"].port
    publish.single("city/demo-campus/cam-dark/status", b"online", qos=1, retain=True, hostname="127.0.0.1", port=port)
    publish.single("city/demo-campus/cam-dark/health", health("cam-dark", 3600), hostname="127.0.0.1", port=port)
    publish.single("city/demo-campus/cam-ok/health", health("cam-ok", 0.1), hostname="127.0.0.1", port=port)
    desk = log_in(browser, centre, "alice")

    def fleet_row():
        desk.goto(f"{centre.url}/fleet/")
        row = desk.locator("tr.camera[data-camera='demo-campus/cam-dark']")
        return row.count() and "red" in row.get_attribute("class") and row

    row = wait_for(fleet_row, 20, "the dark camera in red")
    assert "camera_dark" in row.inner_text() and "online" in row.inner_text() and "1 open" in row.inner_text()
    assert "camera_dark" in desk.inner_text("#maintenance") and "demo-campus/cam-dark" in desk.inner_text("#maintenance")
    fine = desk.locator("tr.camera[data-camera='demo-campus/cam-ok']")
    assert "red" not in fine.get_attribute("class") and "never" not in fine.inner_text() and "connected" in fine.inner_text()
    desk.screenshot(path=str(SCREENSHOTS / "centre-fleet.png"), full_page=True)

    publish.single("city/demo-campus/cam-dark/health", health("cam-dark", 0.2), hostname="127.0.0.1", port=port)
    wait_for(lambda: not fleet_row() and "none open" in desk.inner_text("#maintenance"), 20, "the camera back, its case resolved")
    resolved = district["postgres"].sql("SELECT state FROM centre_case WHERE kind = 'maintenance'", "detector")
    assert resolved == "SELF_RESOLVED"


def test_broker_credentials_come_from_the_environment_and_never_reach_the_log(tmp_path):
    broker = Mosquitto(tmp_path / "broker", mode="password").start()
    try:
        centre = Centre(tmp_path / "centre", broker, mqtt={"username": BROKER_USER, "password": "${TEST_MQTT_PASSWORD}"})
        centre.env["TEST_MQTT_PASSWORD"] = BROKER_PASSWORD
        centre.start(web=False)
        assert "ingest from mqtt" in centre.log
        centre.stop()
        refused = centre.command(
            "centre", str(centre.config_path), "--no-web", env={"TEST_MQTT_PASSWORD": "wrong-password"}, check=False
        )
        assert refused.returncode == 5
        line = refused.stderr.strip().splitlines()[-1]
        assert line in [  # mosquitto answers MQTT v5 with "not authorized"
            f"detector: error: mqtt broker 127.0.0.1:{broker.port} refused the connection: {reason}"
            for reason in ("not authorized", "bad user name or password")
        ]
        for secret in (BROKER_PASSWORD, "wrong-password"):
            assert secret not in centre.log + refused.stdout + refused.stderr
    finally:
        broker.stop()
