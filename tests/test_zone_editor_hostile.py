"""Hostile requests to the zone editor's save endpoint over a raw socket: each one gets a clear
4xx at once (never a traceback, a hung thread or a dropped connection) and the config file stays
byte for byte as it was. One well-formed save at the end shows the checks let the page through."""

import json
import re
import socket
import threading
import time

import pytest
from conftest import ROOT, asset

from detector.operator.zone_editor import MAX_BODY, ZoneEditor, make_server

TIMEOUT_S = 1.0  # the server's request timeout in these tests (10 s in use)


@pytest.fixture()
def config_file(tmp_path):
    text = (ROOT / "configs/demo.yaml").read_text()
    text = text.replace("models/yolov8n.onnx", str(asset("models/yolov8n.onnx")))
    text = text.replace("sample_videos/clips/vtest.avi", str(asset("sample_videos/clips/vtest.avi")))
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return path


@pytest.fixture()
def server(config_file):
    server = make_server(ZoneEditor(config_file, "vtest"), 0, request_timeout_s=TIMEOUT_S)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def exchange(server, head: str, body: bytes = b"", *, close_write: bool = False) -> tuple[int, dict, float]:
    """Send `head` (request line and headers, without the blank line) and `body`; (status, JSON
    reply, seconds until the server closed the connection)."""
    port = server.server_address[1]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("PORT", str(port)).encode() + b"\r\n\r\n" + body)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    status_line, _, rest = reply.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(payload), time.monotonic() - started


def page_token(server) -> str:
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        page = b""
        while chunk := sock.recv(65536):
            page += chunk
    return re.search(rb'name="detector-token" content="([^"]+)"', page)[1].decode()


def save_head(length: int | str | None, token: str | None, origin: str | None = "http://127.0.0.1:PORT") -> str:
    lines = ["POST /api/save HTTP/1.1", "Host: 127.0.0.1:PORT", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if token is not None:
        lines.append(f"X-Detector-Token: {token}")
    if origin is not None:
        lines.append(f"Origin: {origin}")
    return "\r\n".join(lines)


def body_with(editor_version: str, **changes) -> bytes:
    return json.dumps({"version": editor_version, "zones": [], **changes}).encode()


def deep_json(depth: int) -> bytes:
    return b'{"version": "v", "zones": ' + b"[" * depth + b"]" * depth + b"}"


# (name, head from (token, version), body from (token, version), status, fragment of the error)
HOSTILE = {
    "length not a number": (lambda t, v: save_head("abc", t), lambda t, v: b"", 400, "Content-Length 'abc' is not a number"),
    "negative length": (lambda t, v: save_head(-1, t), lambda t, v: b"", 400, "Content-Length '-1' is not a number"),
    "two lengths": (
        lambda t, v: save_head(2, t) + "\r\nContent-Length: 9",
        lambda t, v: b"",
        400,
        "more than one Content-Length",
    ),
    "no length": (lambda t, v: save_head(None, t), lambda t, v: b"", 411, "Content-Length required"),
    "huge body": (lambda t, v: save_head(MAX_BODY + 1, t), lambda t, v: b"", 413, "request too large"),
    "missing token": (lambda t, v: save_head(len(body_with(v)), None), lambda t, v: body_with(v), 403, "X-Detector-Token"),
    "wrong token": (lambda t, v: save_head(len(body_with(v)), "x" + t), lambda t, v: body_with(v), 403, "X-Detector-Token"),
    "non-ASCII token": (lambda t, v: save_head(len(body_with(v)), "é"), lambda t, v: body_with(v), 403, "X-Detector-Token"),
    "foreign origin": (
        lambda t, v: save_head(len(body_with(v)), t, "http://127.0.0.1:8080"),
        lambda t, v: body_with(v),
        403,
        "Origin http://127.0.0.1:8080 is not this editor's",
    ),
    "sandboxed origin": (lambda t, v: save_head(len(body_with(v)), t, "null"), lambda t, v: body_with(v), 403, "Origin null"),
    "missing version": (
        lambda t, v: save_head(len(b'{"zones": []}'), t),
        lambda t, v: b'{"zones": []}',
        400,
        "version missing",
    ),
    "empty version": (lambda t, v: save_head(len(body_with("")), t), lambda t, v: body_with(""), 400, "version missing"),
    "deep JSON": (lambda t, v: save_head(len(deep_json(100_000)), t), lambda t, v: deep_json(100_000), 400, "nested too deeply"),
    "NaN": (
        lambda t, v: save_head(len(b'{"version": "v", "zones": NaN}'), t),
        lambda t, v: b'{"version": "v", "zones": NaN}',
        400,
        "NaN",
    ),
    "not UTF-8": (lambda t, v: save_head(4, t), lambda t, v: b'{"\xff"', 400, "not JSON"),
    "not an object": (lambda t, v: save_head(2, t), lambda t, v: b"[]", 400, "expected a JSON object"),
    "form post": (
        lambda t, v: save_head(len(body_with(v)), t).replace("application/json", "text/plain"),
        lambda t, v: body_with(v),
        415,
        "send application/json",
    ),
    "zone with a list as orig_id": (
        lambda t, v: save_head(len(body_with(v, zones=[{"orig_id": [1], "id": "a"}])), t),
        lambda t, v: body_with(v, zones=[{"orig_id": [1], "id": "a"}]),
        422,
        "orig_id must be",
    ),
}


@pytest.mark.parametrize("head, body, status, fragment", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_save_gets_a_clear_4xx_and_the_file_stays(server, config_file, head, body, status, fragment):
    before = config_file.read_bytes()
    token, version = page_token(server), server.RequestHandlerClass.editor.version()
    got, reply, seconds = exchange(server, head(token, version), body(token, version))
    assert (got, reply["ok"]) == (status, False)
    assert fragment in reply["errors"][0]
    assert seconds < TIMEOUT_S  # answered at once: no wait for a body that never comes
    assert config_file.read_bytes() == before
    assert [p.name for p in config_file.parent.iterdir()] == [config_file.name]  # no temporary left


def test_a_body_that_stops_coming_is_refused_after_the_timeout(server, config_file):
    before = config_file.read_bytes()
    got, reply, seconds = exchange(server, save_head(100, page_token(server)), b'{"version": ')
    assert got == 408 and "did not arrive within 1 s" in reply["errors"][0]
    assert TIMEOUT_S <= seconds < TIMEOUT_S + 2
    assert config_file.read_bytes() == before


def test_a_body_cut_short_is_refused(server, config_file):
    before = config_file.read_bytes()
    got, reply, seconds = exchange(server, save_head(100, page_token(server)), b'{"version": ', close_write=True)
    assert got == 400 and "ended after 12 of 100 bytes" in reply["errors"][0]
    assert seconds < TIMEOUT_S and config_file.read_bytes() == before


def test_stalled_headers_free_the_thread(server):
    """A client that never finishes its headers (slowloris) is disconnected after the timeout."""
    port = server.server_address[1]
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /api/save HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        assert sock.recv(65536) == b""  # closed by the server
    assert TIMEOUT_S <= time.monotonic() - started < TIMEOUT_S + 2


def test_the_page_token_own_origin_and_version_save(server, config_file):
    """The control: what the page sends is accepted (without an Origin too, as a script would)."""
    token, version = page_token(server), server.RequestHandlerClass.editor.version()
    state = server.RequestHandlerClass.editor.describe()
    body = json.dumps({"version": version, "zones": state["zones"][:1]}).encode()
    got, reply, _ = exchange(server, save_head(len(body), token), body)
    assert got == 200 and reply["ok"] and [z["id"] for z in reply["zones"]] == ["van-no-parking"]
    assert "crossing" not in config_file.read_text()
    body = json.dumps({"version": reply["version"], "zones": state["zones"]}).encode()
    got, reply, _ = exchange(server, save_head(len(body), token, origin=None), body)
    assert got == 200 and [z["id"] for z in reply["zones"]] == ["van-no-parking", "crossing"]
