"""The errors a user can cause, mapped at the boundary from cv2/onnxruntime/PyAV/paho failures.

    DetectorError            anything the CLI reports as one line and a non-zero exit
    ├── ConfigError          bad YAML, unknown keys, wrong types, missing files or variables
    ├── SourceError          a video that is missing, corrupt or cannot be decoded
    ├── ModelError           a model file that is missing, truncated or of an unknown layout
    ├── PublishError         a sink that cannot deliver (broker refusing credentials, ...)
    └── OutputError          an output that cannot be written (--out not a folder, read-only, disk full)

Messages name the cause (a key path, a file) and never contain secrets: URLs pass through
`redact_url` before they are put in a message.
"""

import re


class DetectorError(Exception):
    """Base of every error the command line reports without a traceback."""

    exit_code = 1


class ConfigError(DetectorError):
    exit_code = 2


class SourceError(DetectorError):
    exit_code = 3


class ModelError(DetectorError):
    exit_code = 4


class PublishError(DetectorError):
    exit_code = 5


class OutputError(DetectorError):
    exit_code = 6


# Where a URL starts: `rtsp://`, and `rtsp:/` as pathlib leaves it (Path() collapses `//`).
_SCHEME = re.compile(r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]*:/{1,2}")


def redact_url(text: str) -> str:
    """Replace the user:password part of every URL in `text` (a URL, a log line, an FFmpeg
    message quoting one) with `***`: `rtsp://admin:p@ss/w rd@cam-7:554/live` -> `rtsp://***@cam-7:554/live`.

    By hand, not urllib.parse: urlsplit ends the host part at the first `/`, `?` or `#` (as
    FFmpeg does), so a password written with a raw `/` would be shown as host and path; and it
    reads one URL, not a line of text. Here the user:password part runs from the scheme to the
    LAST `@` on the URL's line, whatever it holds (`@`, `/`, `:`, spaces, %-escapes, any script).
    An `@` later on the line (in a path, a second URL) hides more than needed: never less.
    """
    parts, done = [], 0
    for scheme in _SCHEME.finditer(text):
        start = scheme.end()
        if start <= done:  # inside a part already hidden
            continue
        line_end = text.find("\n", start)
        at = text.rfind("@", start, len(text) if line_end < 0 else line_end)
        if at >= 0:
            parts += [text[done:start], "***"]
            done = at
    return "".join(parts) + text[done:]
