"""A real RTSP server for the live-camera tests (issue 4): gst-rtsp-server (Debian packages
python3-gst-1.0, gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-{base,good,bad}) run by the
system's /usr/bin/python3 (the venv has no GObject bindings), bound to 127.0.0.1 on a free port,
serving an H.264 MP4 made at test time from a real clip with PyAV (`make_h264_clip`).

    clip = make_h264_clip(vtest, tmp / "vtest.mp4")
    server = RtspServer(clip).start()          # server.url -> rtsp://127.0.0.1:PORT/cam
    server.kill(); server.start(); server.freeze(); server.thaw(); server.stop()

The media is shared, like a camera: every client sees the same live stream, paced at the clip's
frame rate from the moment the first client connects. At the end of the clip the server ends the
stream (the client sees "source closed"). Run as a script (by /usr/bin/python3) it is the server.
"""

import os
import signal
import socket
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"
USER, PASSWORD = "viewer", "Cam-pa55-word"


def gst_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = (
        "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
        "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
        "assert all(Gst.ElementFactory.find(n) for n in ('qtdemux', 'h264parse', 'rtph264pay'))"
    )
    return subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_h264_clip(
    source: Path,
    target: Path,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: int | None = None,
    gop: int | None = None,
    seconds: float | None = None,
    blank: tuple[float, float, float, float] | None = None,
    blank_from_s: float = 0.0,
    keyframes_s: tuple[float, ...] | None = None,
) -> Path:
    """Re-encode `source` to an H.264 MP4 (no B-frames, a keyframe every `gop` frames, default 1 s),
    optionally scaled, resampled to `fps` (frames repeated or dropped by time), cut to `seconds`,
    and with the normalised rectangle `blank` painted grey from `blank_from_s` on (an object
    removed, or leaving). `keyframes_s`: keyframes at these seconds only instead (a GOP that
    changes). Cached by name."""
    import av

    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial.mp4")
    with av.open(str(source)) as src, av.open(str(partial), "w") as dst:
        stream_in = src.streams.video[0]
        rate_in = float(stream_in.average_rate or 25)
        rate = fps or round(rate_in)
        out = dst.add_stream("libx264", rate=rate)
        out.width = width or stream_in.codec_context.width
        out.height = height or stream_in.codec_context.height
        out.pix_fmt = "yuv420p"
        out.codec_context.time_base = Fraction(1, rate)
        out.options = {
            "bf": "0",
            "g": str(10**6 if keyframes_s else gop or rate),
            "keyint_min": str(10**6 if keyframes_s else gop or rate),
            "sc_threshold": "0",
            "preset": "veryfast",
            "crf": "26",
        }
        written = 0
        for index, frame in enumerate(src.decode(stream_in)):
            t = index / rate_in
            if seconds is not None and t >= seconds:
                break
            if blank is not None and t >= blank_from_s:
                image = frame.to_ndarray(format="bgr24")
                h, w = image.shape[:2]
                image[int(blank[1] * h) : int(blank[3] * h), int(blank[0] * w) : int(blank[2] * w)] = 128
                frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            while written / rate <= t + 1e-9:  # resample by time: repeat or drop frames
                scaled = frame.reformat(width=out.width, height=out.height, format="yuv420p")
                scaled.pts, scaled.time_base = written, Fraction(1, rate)
                if keyframes_s:  # forced or not, never the source's own keyframes
                    key = any(abs(written / rate - k) < 1e-6 for k in keyframes_s)
                    scaled.pict_type = av.video.frame.PictureType.I if key else av.video.frame.PictureType.NONE
                for packet in out.encode(scaled):
                    dst.mux(packet)
                written += 1
        for packet in out.encode():
            dst.mux(packet)
    partial.rename(target)
    return target


class RtspServer:
    """One gst-rtsp-server process; `start()` after `kill()` reuses the port (outage tests)."""

    def __init__(self, clip: Path, *, port: int | None = None, auth: bool = False, mount: str = "/cam") -> None:
        self.clip = Path(clip)
        self.port = port or free_port()
        self.auth = auth
        self.mount = mount
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    def url_with(self, user: str, password: str) -> str:
        return f"rtsp://{user}:{password}@127.0.0.1:{self.port}{self.mount}"

    def start(self, clip: Path | None = None) -> "RtspServer":
        if clip is not None:
            self.clip = Path(clip)
        args = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--clip", str(self.clip), "--mount", self.mount]
        if self.auth:
            args += ["--user", USER, "--password", PASSWORD]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = self.process.stdout.readline()  # the server prints "ready" once it listens
        if "ready" not in ready:
            self.process.wait(5)
            raise RuntimeError(f"rtsp server did not start: {ready} {self.process.stderr.read()}")
        return self

    def kill(self) -> None:
        """Gone without a goodbye, like a camera losing power."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    stop = kill

    def freeze(self) -> None:
        """The connection stays open but nothing more arrives."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.process.pid, signal.SIGCONT)


def _serve(port: int, clip: str, mount: str, user: str | None, password: str | None) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(f'( filesrc location="{clip}" ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )')
    factory.set_shared(False)  # a pipeline per client: shared media raced its first prepare when clients connected at once
    if user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("user", "media.factory.access", True)
        permissions.add_permission_for_role("user", "media.factory.construct", True)
        factory.set_permissions(permissions)
    server.get_mount_points().add_factory(mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{port}", flush=True)
        sys.exit(1)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--user")
    parser.add_argument("--password")
    a = parser.parse_args()
    _serve(a.port, a.clip, a.mount, a.user, a.password)

__all__ = ["RtspServer", "make_h264_clip", "gst_available", "free_port", "USER", "PASSWORD"]
