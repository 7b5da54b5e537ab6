"""The alert event as a value: schema detector.alert/1 (docs/alerts.md, docs/alert.schema.json).

`to_json()` gives the payload exactly as published and written to events.jsonl (key order
included); `from_json()` reads one back and names the field that is wrong. Receivers must ignore
fields they do not know, so `from_json` drops them, and optional fields missing from an older
payload stay None and are left out again by `to_json`.
"""

import json
import sys
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

SCHEMA = "detector.alert/1"


class AlertEvent(StrEnum):
    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True)
class AlertObject:
    label: str
    score: float
    box: tuple[float, float, float, float]  # normalised [x1, y1, x2, y2]
    track_id: int | None = None

    def to_json(self) -> dict:
        out = {"label": self.label, "score": self.score, "box": list(self.box)}
        if self.track_id is not None:
            out["track_id"] = self.track_id
        return out


@dataclass(frozen=True)
class Snapshot:
    """The evidence JPEG of a start: path relative to the output folder, and its sha256."""

    path: str
    sha256: str


@dataclass(frozen=True)
class ModelStamp:
    name: str
    sha256: str


@dataclass(frozen=True)
class Alert:
    id: str
    seq: int
    event: AlertEvent
    type: str
    site: str
    camera: str
    zone: str
    first_seen_s: float
    stream_time_s: float
    first_seen_at: str
    at: str
    confidence: float
    objects: tuple[AlertObject, ...]
    snapshot: Snapshot | None = None
    model: ModelStamp | None = None
    config_sha256: str | None = None
    gap_s: float | None = None  # the payload's stream.gap_s: seconds of stream gaps so far
    delayed: bool = False
    reason: str | None = None  # why an `end` came (cleared, schedule)
    snapshot_error: str | None = None  # why a start has no snapshot: disk_full | read_only | error

    @property
    def key(self) -> tuple[str, str]:
        """(zone, type): at most one alert of a camera is open per key."""
        return self.zone, self.type

    def with_delayed(self) -> "Alert":
        return replace(self, delayed=True)

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "schema": SCHEMA,
            "id": self.id,
            "seq": self.seq,
            "event": self.event.value,
            "type": self.type,
            "site": self.site,
            "camera": self.camera,
            "zone": self.zone,
            "first_seen_s": self.first_seen_s,
            "stream_time_s": self.stream_time_s,
            "first_seen_at": self.first_seen_at,
            "at": self.at,
            "confidence": self.confidence,
            "objects": [o.to_json() for o in self.objects],
            "snapshot": None if self.snapshot is None else {"path": self.snapshot.path, "sha256": self.snapshot.sha256},
        }
        if self.snapshot_error:
            out["snapshot_error"] = self.snapshot_error
        if self.model is not None:
            out["model"] = {"name": self.model.name, "sha256": self.model.sha256}
        if self.config_sha256 is not None:
            out["config_sha256"] = self.config_sha256
        if self.gap_s is not None:
            out["stream"] = {"gap_s": self.gap_s}
        out["delayed"] = self.delayed
        if self.reason:
            out["reason"] = self.reason
        return out

    def to_bytes(self) -> bytes:
        """One compact JSON line, as published and as written to events.jsonl (UTF-8)."""
        return json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: Any) -> "Alert":
        """ValueError naming the field when `data` is not a detector.alert/1 payload."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        if data.get("schema") != SCHEMA:
            raise ValueError(f"schema must be {SCHEMA!r}, got {data.get('schema')!r}")
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        try:
            return cls(
                id=_text(data, "id"),
                seq=_field(data, "seq", int, "an integer"),
                event=AlertEvent(data["event"]),
                type=_text(data, "type"),
                site=_text(data, "site"),
                camera=_text(data, "camera"),
                zone=_text(data, "zone"),
                first_seen_s=_number(data, "first_seen_s"),
                stream_time_s=_number(data, "stream_time_s"),
                first_seen_at=_text(data, "first_seen_at"),
                at=_text(data, "at"),
                confidence=_number(data, "confidence"),
                objects=tuple(_object(o, i) for i, o in enumerate(_field(data, "objects", list, "a list"))),
                snapshot=None
                if data["snapshot"] is None
                else Snapshot(_text(data["snapshot"], "path"), _text(data["snapshot"], "sha256")),
                model=ModelStamp(_text(data["model"], "name"), _text(data["model"], "sha256")) if "model" in data else None,
                config_sha256=_text(data, "config_sha256") if "config_sha256" in data else None,
                gap_s=_number(data["stream"], "gap_s") if "gap_s" in (data.get("stream") or {}) else None,
                delayed=_field(data, "delayed", bool, "true or false"),
                reason=_text(data, "reason") if data.get("reason") else None,
                snapshot_error=_text(data, "snapshot_error") if data.get("snapshot_error") else None,
            )
        except (TypeError, KeyError) as exc:
            raise ValueError(f"malformed field: {exc}") from None
        except ValueError as exc:
            raise ValueError(str(exc).replace("is not a valid AlertEvent", "is not an event (start, update, end)")) from None

    @classmethod
    def from_bytes(cls, body: bytes) -> "Alert":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON ({exc})") from None
        except RecursionError:  # json's decoder recurses per level: `[[[[...` from a broker or a file
            raise ValueError("not a payload: JSON nested too deeply") from None
        return cls.from_json(data)


_REQUIRED = ("id", "seq", "event", "type", "site", "camera", "zone", "first_seen_s", "stream_time_s", "first_seen_at", "at",
             "confidence", "objects", "snapshot", "delayed")  # fmt: skip


def _field(data: dict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    """data[key] if it is of `kind` (a bool is never a number, as JSON sees it)."""
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"{key} must be {what}, got {value!r}")
    return value


def _text(data: dict, key: str) -> str:
    return _field(data, key, str, "a string")


def _number(data: dict, key: str) -> float:
    value = _field(data, key, (int, float), "a number")
    if not abs(value) <= sys.float_info.max:  # NaN, Infinity (json reads both) and integers beyond any float
        raise ValueError(f"{key} must be a finite number, got {value!r:.40}")
    return value


def _object(data: Any, index: int) -> AlertObject:
    if not isinstance(data, dict):
        raise ValueError(f"objects[{index}] must be an object")
    box = data.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise ValueError(f"objects[{index}].box must be [x1, y1, x2, y2]")
    track_id = data.get("track_id")
    return AlertObject(_text(data, "label"), _number(data, "score"), tuple(box), track_id)
