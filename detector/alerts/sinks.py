"""Where alert payloads go. Every sink has `emit(payload)` and `close()`."""

import json
import os
import sys
from pathlib import Path
from typing import Protocol, TextIO


class Sink(Protocol):
    def emit(self, payload: dict) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    """One payload per line, exactly as published; flushed and fsynced per alert so a crash
    right after an alert does not lose it (alerts are rare: the cost does not matter)."""

    def __init__(self, path: Path, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a" if append else "w", encoding="utf-8")

    def emit(self, payload: dict) -> None:
        self._file.write(json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


class ConsoleSink:
    """One readable line per alert event."""

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream

    def emit(self, payload: dict) -> None:
        print(format_alert(payload), file=self.stream, flush=True)

    def close(self) -> None:
        pass


def format_alert(payload: dict) -> str:
    """`  62.0s START  illegal_parking  cam-01/gate  truck 0.67, car 0.71  (id 0192…, seq 1)`."""
    objects = ", ".join(f"{o['label']} {o['score']:.2f}" for o in payload["objects"][:4]) or "-"
    if len(payload["objects"]) > 4:
        objects += f" +{len(payload['objects']) - 4}"
    extra = f"  [{payload['reason']}]" if payload.get("reason") else ""
    return (
        f"{payload['stream_time_s']:8.1f}s {payload['event'].upper():6} {payload['type']:15} "
        f"{payload['camera']}/{payload['zone']}  {objects}  "
        f"(since {payload['first_seen_s']:.1f}s, id {payload['id'][:13]}, seq {payload['seq']}){extra}"
    )
