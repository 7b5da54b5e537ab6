"""`detector zones`: a local web page to draw and edit one camera's zones on a frame of its video.

Standard library only on the server side (ThreadingHTTPServer on 127.0.0.1), one static page
(static/zone_editor.html, plain JS on a canvas). JSON API:

    GET  /                      the page
    GET  /api/config            camera, zones, violation types, frame count/fps/size, file version
    GET  /api/frame?n=N         frame N of the clip as JPEG (decoded here with PyAV)
    POST /api/save              {version, zones: [...]} -> {ok, zones, version} | {ok: false, errors}

Only the page may save: POST needs the per-server random token the page carries
(`X-Detector-Token`; another site's page cannot read it) and, when the browser names one, this
server's own Origin; `version` is required. Every request must arrive within REQUEST_TIMEOUT_S,
its body at most MAX_BODY bytes with an exact Content-Length; anything else is a 4xx at once.

Save rewrites only the camera's zones in the YAML (detector/operator/yaml_edit.py), validates
the new text exactly like `detector check` does (load_config on a temporary copy next to the
file, then check_files) *before* anything is replaced, and replaces the file atomically. A file
changed on disk since the page loaded is not overwritten (409: reload).
"""

import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from fractions import Fraction
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import av
import cv2
import numpy as np

from detector.config import ViolationType, check_files, load_config
from detector.config.schema import DEFAULT_VIOLATIONS
from detector.errors import ConfigError, DetectorError, SourceError, redact_url
from detector.operator.yaml_edit import ConfigDocument
from detector.urls import is_stream_url

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "zone_editor.html"
MAX_BODY = 1 << 20
REQUEST_TIMEOUT_S = 10.0  # to send a whole request: a stalled client frees its thread after this
TOKEN_HEADER = "X-Detector-Token"
TOKEN_SLOT = "{{detector-token}}"  # in the page, replaced by the server's token when served
JPEG_QUALITY = 85
FRAME_CACHE = 32  # decoded JPEGs kept (the slider goes back and forth)


class FrameGrabber:
    """Frame N of a video file as JPEG: seek to the keyframe before it, decode forward.

    A live source (rtsp://) gives one still grabbed at start-up; its URL is never shown.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.live = is_stream_url(source)
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        try:
            container = av.open(source, timeout=10.0) if self.live else av.open(source)
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{redact_url(source)}: cannot open video: {redact_url(str(exc))}") from None
        with container:
            if not container.streams.video:
                raise SourceError(f"{redact_url(source)}: contains no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            self.fps = float(rate) if rate else 25.0
            self.width, self.height = stream.codec_context.width, stream.codec_context.height
            self.time_base = stream.time_base or Fraction(1, 1000)
            self.start_pts = stream.start_time or 0
            if self.live:
                self.count = 1
                self._still = self._first_frame(container)
            else:
                duration = (
                    float(stream.duration * stream.time_base) if stream.duration else (container.duration or 0) / av.time_base
                )
                self.count = max(stream.frames or round(duration * self.fps), 1)

    @staticmethod
    def _first_frame(container) -> np.ndarray:
        for frame in container.decode(video=0):
            return frame.to_ndarray(format="bgr24")
        raise SourceError("live source gave no frame")

    def jpeg(self, n: int) -> bytes:
        if not 0 <= n < self.count:
            raise ValueError(f"frame {n} is outside 0..{self.count - 1}")
        with self._lock:
            if n in self._cache:
                self._cache.move_to_end(n)
                return self._cache[n]
        image = self._still if self.live else self._decode(n)
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        data = encoded.tobytes()
        with self._lock:
            self._cache[n] = data
            while len(self._cache) > FRAME_CACHE:
                self._cache.popitem(last=False)
        return data

    def _decode(self, n: int) -> np.ndarray:
        target = n / self.fps
        last = None
        try:
            with av.open(self.source) as container:
                stream = container.streams.video[0]
                container.seek(self.start_pts + int(target / self.time_base), stream=stream, backward=True)
                for frame in container.decode(stream):
                    last = frame
                    t = (frame.pts - self.start_pts) * self.time_base if frame.pts is not None else None
                    if t is None or t >= target - 0.5 / self.fps:
                        break
        except av.FFmpegError as exc:
            raise SourceError(f"{self.source}: cannot decode frame {n}: {exc}") from None
        if last is None:
            raise SourceError(f"{self.source}: no frame at {target:.2f} s")
        return last.to_ndarray(format="bgr24")


class ZoneEditor:
    """The editor's state and operations, independent of HTTP (the handler only translates)."""

    def __init__(self, config_path: Path, camera_id: str, source: Path | None = None) -> None:
        self.path = Path(config_path)
        config = load_config(self.path)
        try:
            self.camera = config.camera(camera_id)
        except KeyError as exc:
            raise ConfigError(exc.args[0]) from None
        self.camera_id = camera_id
        # the camera's own clip must exist unless another one is shown; other cameras' never matter here
        self._checked_cameras = [camera_id] if source is None else []
        self.frames = FrameGrabber(str(source) if source is not None else self.camera.source)
        self._lock = threading.Lock()

    def version(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    def describe(self) -> dict:
        with self._lock:
            config = load_config(self.path)
            camera = config.camera(self.camera_id)
            document = ConfigDocument(self.path.read_text(encoding="utf-8"), str(self.path))
            return {
                "config": str(self.path),
                "camera": camera.id,
                "source": Path(redact_url(self.frames.source)).name if not self.frames.live else redact_url(self.frames.source),
                "version": self.version(),
                "shared_with": document.shared_with(camera.id),
                "types": [
                    {
                        "id": t.value,
                        "dwell_s": getattr(config.violations, t.value).dwell_s,
                        "default_dwell_s": DEFAULT_VIOLATIONS[t].dwell_s,
                    }
                    for t in ViolationType
                ],
                "frames": {
                    "count": self.frames.count,
                    "fps": self.frames.fps,
                    "width": self.frames.width,
                    "height": self.frames.height,
                },
                "zones": [
                    {
                        "orig_id": z.id,
                        "id": z.id,
                        "polygon": [list(p) for p in z.polygon],
                        "violations": [v.value for v in z.violations],
                        "dwell_s": z.dwell_s,
                        "schedule": list(z.schedule),
                    }
                    for z in camera.zones
                ],
            }

    def save(self, zones: list, version: str) -> tuple[int, dict]:
        """(HTTP status, body). Validates before replacing; leaves the file untouched on error."""
        problems = _shape_problems(zones)
        if problems:
            return HTTPStatus.UNPROCESSABLE_ENTITY, {"ok": False, "errors": problems}
        with self._lock:
            text = self.path.read_text(encoding="utf-8")
            if version != hashlib.sha256(text.encode("utf-8")).hexdigest():
                return HTTPStatus.CONFLICT, {
                    "ok": False,
                    "errors": [
                        f"{self.path} changed on disk since this page loaded it; reload the page (your edits are not saved)"
                    ],
                }
            try:
                document = ConfigDocument(text, str(self.path))
                document.set_zones(self.camera_id, zones)
                new_text = document.dump()
                self._validate_and_replace(new_text)
            except DetectorError as exc:
                return HTTPStatus.UNPROCESSABLE_ENTITY, {"ok": False, "errors": redact_url(str(exc)).splitlines()}
        log.info("saved %d zones of camera %s to %s", len(zones), self.camera_id, self.path)
        return HTTPStatus.OK, {"ok": True, **self.describe()}

    def _validate_and_replace(self, new_text: str) -> None:
        """The checks of `detector check` (minus opening the model) on the new text, then an
        atomic replace. The temporary file sits next to the config: same file system for the
        rename, and relative paths in the config mean the same."""
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(new_text)
            try:
                check_files(load_config(temporary), cameras=self._checked_cameras)
            except ConfigError as exc:
                raise ConfigError(str(exc).replace(temporary, str(self.path))) from None
            os.chmod(temporary, self.path.stat().st_mode & 0o777)
            os.replace(temporary, self.path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)


def _shape_problems(zones) -> list[str]:
    """What JSON from the page must look like; the config rules themselves are load_config's."""
    if not isinstance(zones, list):
        return ["zones must be a list"]
    problems = []
    for i, zone in enumerate(zones):
        where = f"zone {i + 1}"
        if not isinstance(zone, dict):
            problems.append(f"{where}: expected an object")
            continue
        if not isinstance(zone.get("id"), str) or not zone["id"].strip():
            problems.append(f"{where}: give it a name (id)")
        if zone.get("orig_id") is not None and not isinstance(zone["orig_id"], str):
            problems.append(f"{where}: orig_id must be the zone's id in the file or empty")
        polygon = zone.get("polygon")
        if not isinstance(polygon, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
            for p in polygon
        ):
            problems.append(f"{where}: polygon must be a list of [x, y] numbers")
        if not isinstance(zone.get("violations"), list) or not all(isinstance(v, str) for v in zone["violations"]):
            problems.append(f"{where}: violations must be a list of type names")
        dwell = zone.get("dwell_s")
        if dwell is not None and (isinstance(dwell, bool) or not isinstance(dwell, (int, float))):
            problems.append(f"{where}: dwell_s must be a number or empty")
        schedule = zone.get("schedule")
        if schedule is not None and (not isinstance(schedule, list) or not all(isinstance(s, str) for s in schedule)):
            problems.append(f"{where}: schedule must be a list of windows")
    return problems


class _Refused(Exception):
    """A request answered with a 4xx and one error line before it reaches the editor."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    editor: ZoneEditor  # these three are set on the subclass made by make_server()
    token: str
    timeout: float  # socket timeout for every read of a request (StreamRequestHandler applies it)
    server_version = "detector-zones"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's name
        log.debug("%s %s", self.address_string(), format % args)

    def _allowed_host(self) -> bool:
        """Only requests addressed to this loopback server (no DNS-rebinding from a web page)."""
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
        return host in ("127.0.0.1", "localhost", "[::1]")

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if not self._allowed_host():
            return self._send_json(HTTPStatus.FORBIDDEN, {"ok": False, "errors": ["wrong Host"]})
        url = urlparse(self.path)
        try:
            if url.path in ("/", "/index.html"):
                page = PAGE.read_text(encoding="utf-8").replace(TOKEN_SLOT, self.token)
                return self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
            if url.path == "/api/config":
                return self._send_json(HTTPStatus.OK, self.editor.describe())
            if url.path == "/api/frame":
                query = parse_qs(url.query)
                try:
                    n = int(query.get("n", ["0"])[0])
                    data = self.editor.frames.jpeg(n)
                except ValueError as exc:
                    return self._send_json(HTTPStatus.BAD_REQUEST, {"ok": False, "errors": [str(exc)]})
                return self._send(HTTPStatus.OK, data, "image/jpeg")
            self._send_json(HTTPStatus.NOT_FOUND, {"ok": False, "errors": [f"no such page: {url.path}"]})
        except DetectorError as exc:
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"ok": False, "errors": redact_url(str(exc)).splitlines()})

    def do_POST(self) -> None:  # noqa: N802
        try:
            body = self._save_request()
        except _Refused as refused:
            self.close_connection = True
            return self._send_json(refused.status, {"ok": False, "errors": [str(refused)]})
        status, payload = self.editor.save(body.get("zones"), body["version"])
        self._send_json(status, payload)

    def _save_request(self) -> dict:
        """The body of POST /api/save once every check passed; _Refused names the first that failed."""
        if not self._allowed_host():
            raise _Refused(HTTPStatus.FORBIDDEN, "wrong Host")
        if urlparse(self.path).path != "/api/save":
            raise _Refused(HTTPStatus.NOT_FOUND, "no such endpoint")
        data = self._read_body()  # first: refused with its body unread, the client could miss the answer
        # JSON only: a cross-site form cannot send it without a preflight this server never answers
        if not (self.headers.get("Content-Type") or "").startswith("application/json"):
            raise _Refused(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        if not hmac.compare_digest((self.headers.get(TOKEN_HEADER) or "").encode(), self.token.encode()):
            raise _Refused(HTTPStatus.FORBIDDEN, f"missing or wrong {TOKEN_HEADER}: save from the editor's page (reload it)")
        origin = self.headers.get("Origin")
        if origin is not None and origin not in self._own_origins():
            raise _Refused(HTTPStatus.FORBIDDEN, f"Origin {origin} is not this editor's")
        try:
            body = json.loads(data, parse_constant=_refuse_constant)
        except RecursionError:  # the C parser's own bound on nesting
            raise _Refused(HTTPStatus.BAD_REQUEST, "not JSON: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, bytes that are not UTF-8, NaN/Infinity
            raise _Refused(HTTPStatus.BAD_REQUEST, f"not JSON: {getattr(exc, 'msg', exc)}") from None
        if not isinstance(body, dict):
            raise _Refused(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        if not isinstance(body.get("version"), str) or not body["version"]:
            raise _Refused(HTTPStatus.BAD_REQUEST, "version missing: send the version /api/config gave (reload the page)")
        return body

    def _read_body(self) -> bytes:
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise _Refused(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        if len(lengths) > 1:
            raise _Refused(HTTPStatus.BAD_REQUEST, "more than one Content-Length")
        length = lengths[0]
        if not (length.isascii() and length.isdigit()):
            raise _Refused(HTTPStatus.BAD_REQUEST, f"Content-Length {length[:40]!r} is not a number of bytes")
        if int(length) > MAX_BODY:
            raise _Refused(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"request too large (at most {MAX_BODY} bytes)")
        try:
            data = self.rfile.read(int(length))
        except TimeoutError:
            raise _Refused(HTTPStatus.REQUEST_TIMEOUT, f"the request body did not arrive within {self.timeout:g} s") from None
        if len(data) < int(length):
            raise _Refused(HTTPStatus.BAD_REQUEST, f"the request body ended after {len(data)} of {length} bytes")
        return data

    def _own_origins(self) -> set[str]:
        port = self.server.server_address[1]
        return {f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]")}

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(data)


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def make_server(editor: ZoneEditor, port: int = 0, *, request_timeout_s: float = REQUEST_TIMEOUT_S) -> ThreadingHTTPServer:
    """Bound to 127.0.0.1 only (port 0: any free port; see server.server_address), with a new
    random token for the page it serves."""
    attributes = {"editor": editor, "token": secrets.token_urlsafe(32), "timeout": request_timeout_s}
    handler = type("ZoneEditorHandler", (_Handler,), attributes)
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: a port is 0..65535 (0: any free port)")
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise ConfigError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror} (try another --port)") from None
    server.daemon_threads = True
    return server
