"""Log lines on stderr: `text` for people, `kv` for an edge box's journal (greppable, one event a line).

    ts=2026-11-26T04:26:13.332Z level=warning camera=cam-01 event=stream_lost reason="connection refused" msg="..."

Fields come from `extra={"kv": {...}}` on the log call (event, reason, ...) and from the process
(`camera` in a worker). Every line passes through redact_url, whatever its origin (an FFmpeg or
paho message quoting a URL), so credentials never reach a log; so do uncaught exceptions (whose
message may quote a URL), which are logged here instead of printed by Python.
"""

import logging
import sys
import threading
import time

from detector.errors import redact_url

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _quote(value) -> str:
    text = str(value)
    if text and not any(c in text for c in ' "=\\\n\t'):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class KvFormatter(logging.Formatter):
    def __init__(self, camera: str | None = None) -> None:
        super().__init__()
        self.camera = camera

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        fields = {"ts": stamp, "level": record.levelname.lower(), "logger": record.name}
        if self.camera:
            fields["camera"] = self.camera
        fields.update(getattr(record, "kv", None) or {})
        fields["msg"] = record.getMessage()
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        # each value redacted while its lines are still lines: a URL's user:password ends at the
        # last `@` of its line, and quoting makes the whole record one line
        return " ".join(f"{k}={_quote(redact_url(str(v)))}" for k, v in fields.items())


class RedactingFormatter(logging.Formatter):
    def __init__(self, camera: str | None = None) -> None:
        super().__init__(TEXT_FORMAT if camera is None else TEXT_FORMAT.replace("%(name)s", f"[{camera}] %(name)s"))

    def format(self, record: logging.LogRecord) -> str:
        return redact_url(super().format(record))


def configure(fmt: str = "text", verbose: bool = False, camera: str | None = None) -> None:
    """(Re)configure the root logger: one stderr handler in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KvFormatter(camera) if fmt == "kv" else RedactingFormatter(camera))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("libav").setLevel(logging.ERROR)  # FFmpeg's own chatter; faults are reported by the source
    sys.excepthook = _log_uncaught
    threading.excepthook = lambda hook: _log_uncaught(hook.exc_type, hook.exc_value, hook.exc_traceback, hook.thread)


def _log_uncaught(kind, value, traceback, thread: threading.Thread | None = None) -> None:
    """A crash's traceback through the formatter (redacted, one kv line) rather than raw stderr."""
    if issubclass(kind, (KeyboardInterrupt, SystemExit)):
        return sys.__excepthook__(kind, value, traceback)
    where = f" in thread {thread.name}" if thread is not None else ""
    logging.getLogger("detector").critical("uncaught exception%s", where, exc_info=(kind, value, traceback))
