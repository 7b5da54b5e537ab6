"""The README's centre command (scripts/centre_demo.sh) from start to the browser: it starts a
broker and the centre on SQLite, replays the demo, and the demo's alert is a case a dispatcher
sees after logging in with the printed password. Ctrl-C stops everything it started."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest
from conftest import ROOT, asset
from mqtt_broker import free_port, needs_mosquitto

pytestmark = [needs_mosquitto, pytest.mark.timeout(420)]


def test_the_demo_command_shows_the_demo_alert_as_a_case(browser, tmp_path):
    asset("sample_videos/clips/vtest.avi")
    web_port = free_port()
    env = os.environ | {"DEMO_MQTT_PORT": str(free_port()), "DEMO_WEB_PORT": str(web_port), "CENTRE_DEMO_DIR": str(tmp_path)}
    demo = subprocess.Popen(
        ["scripts/centre_demo.sh"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output = []
        for line in demo.stdout:
            output.append(line)
            if line.startswith("Open http://"):
                break
        found = re.search(r"Open (http://\S+) .* password: (\S+)", output[-1])
        assert found, "".join(output)[-3000:]
        url, password = found.group(1).rstrip("/"), found.group(2)
        assert "1 alerts, 1 events" in "".join(output)
        page = browser.new_context().new_page()
        page.goto(f"{url}/")
        page.fill("input[name=username]", "dispatcher")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_selector("tr.case-row", timeout=20_000)
        rows = page.locator("tr.case-row").all_inner_texts()
        assert len(rows) == 1 and "illegal_parking" in rows[0] and "demo-campus/vtest" in rows[0] and "NEW" in rows[0]
    finally:
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(30)
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout.split()
    assert not left, f"still running after Ctrl-C: {left}"
    with pytest.raises(ConnectionRefusedError):  # the centre's pages are gone too
        socket.create_connection(("127.0.0.1", web_port), timeout=2)
