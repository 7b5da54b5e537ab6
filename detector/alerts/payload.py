"""Alert payloads, schema detector.alert/1 (docs/alerts.md; JSON Schema in docs/alert.schema.json).

One violation keeps one `id` across its start, updates and end; `seq` numbers its events from 1.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from detector.alerts.evidence import EvidenceWriter
from detector.alerts.ids import new_alert_id
from detector.rules.engine import ZoneEvent

SCHEMA = "detector.alert/1"


@dataclass(frozen=True)
class Provenance:
    """What produced the alerts: stamped on every payload so a centre can tell versions apart."""

    site: str
    camera: str
    model_name: str
    model_sha256: str
    config_sha256: str


@dataclass
class _Open:
    id: str
    seq: int
    first_seen_at: str | None = None  # of an alert restored from an earlier process


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertFactory:
    """ZoneEvent -> payload dict; writes the evidence JPEG at `start`."""

    def __init__(self, provenance: Provenance, wall_of: Callable[[float], datetime], evidence: EvidenceWriter | None) -> None:
        self.provenance = provenance
        self.wall_of = wall_of
        self.evidence = evidence
        self._open: dict[tuple[str, str], _Open] = {}

    def restore(self, zone_id: str, violation: str, alert_id: str, seq: int, first_seen_at: str) -> None:
        """Continue an alert opened by an earlier process: its next event is `seq + 1` of the same
        id, and it keeps its original `first_seen_at` (stream times restart with the process)."""
        self._open[(zone_id, violation)] = _Open(alert_id, seq, first_seen_at)

    def open_alert_id(self, zone_id: str, violation: str) -> str | None:
        """Id of the alert open for (zone, type), if any."""
        alert = self._open.get((zone_id, violation))
        return alert.id if alert else None

    def build(self, event: ZoneEvent, image: np.ndarray, polygon_px: np.ndarray, stream: dict) -> dict:
        key = (event.zone_id, event.violation.value)
        transition = event.transition
        if transition.event == "start":
            self._open[key] = _Open(new_alert_id(), 0)
        alert = self._open[key]
        alert.seq += 1
        if transition.event == "end":
            del self._open[key]
        snapshot = None
        if transition.event == "start" and self.evidence is not None:
            title = f"{event.zone_id}: {event.violation.value}"
            snapshot = self.evidence.write(alert.id, image, polygon_px, title, transition.objects)
        p = self.provenance
        payload = {
            "schema": SCHEMA,
            "id": alert.id,
            "seq": alert.seq,
            "event": transition.event,
            "type": event.violation.value,
            "site": p.site,
            "camera": p.camera,
            "zone": event.zone_id,
            "first_seen_s": round(transition.first_seen_s, 3),
            "stream_time_s": round(transition.ts, 3),
            "first_seen_at": alert.first_seen_at or iso_utc(self.wall_of(transition.first_seen_s)),
            "at": iso_utc(self.wall_of(transition.ts)),
            "confidence": max((o.score for o in transition.objects), default=0.0),
            "objects": [
                {"label": o.label, "score": o.score, "box": list(o.box), "track_id": o.track_id} for o in transition.objects
            ],
            "snapshot": snapshot,
            "model": {"name": p.model_name, "sha256": p.model_sha256},
            "config_sha256": p.config_sha256,
            "stream": stream,
            "delayed": False,
        }
        if transition.reason:
            payload["reason"] = transition.reason
        return payload
