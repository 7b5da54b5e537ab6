"""Stream URL or video file? In its own module because the config schema asks too, and config
must not import PyAV (detector.capture does)."""

import re
from pathlib import Path

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_stream_url(source: str | Path) -> bool:
    """Whether `source` is a URL that FFmpeg opens by its protocol (rtsp://, http(s)://, any
    `scheme://`), rather than a file path.

    Only a scheme at the very start counts: `/clips/a://b.mp4` and `clips/a://b.mp4` are (odd)
    file names, since a scheme has no `/`. A `Path` is never a URL (it would have collapsed `//`).
    """
    return isinstance(source, str) and _SCHEME.match(source) is not None
