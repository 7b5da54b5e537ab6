"""Zone events -> `Alert` values (schema detector.alert/1, docs/alerts.md).

One violation keeps one `id` across its start, updates and end; `seq` numbers its events from 1.
Which alerts are open is kept by `OpenAlerts` (the factory's `open`), nowhere else.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from detector.alerts.alert import Alert, AlertEvent, AlertObject, ModelStamp
from detector.alerts.evidence import EvidenceSkipped, EvidenceWriter
from detector.alerts.ids import new_alert_id
from detector.alerts.open_alerts import OpenAlerts
from detector.rules.engine import ZoneEvent


@dataclass(frozen=True)
class Provenance:
    """What produced the alerts: stamped on every payload so a centre can tell versions apart."""

    site: str
    camera: str
    model_name: str
    model_sha256: str
    config_sha256: str


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertFactory:
    """ZoneEvent -> Alert; writes the evidence JPEG at `start`; keeps `open` up to date."""

    def __init__(
        self,
        provenance: Provenance,
        wall_of: Callable[[float], datetime],
        evidence: EvidenceWriter | None,
        open_alerts: OpenAlerts | None = None,
    ) -> None:
        self.provenance = provenance
        self.wall_of = wall_of
        self.evidence = evidence
        self.open = open_alerts if open_alerts is not None else OpenAlerts()

    def build(self, event: ZoneEvent, image: np.ndarray, gap_s: float) -> Alert:
        transition = event.transition
        kind = AlertEvent(transition.event)
        violation = event.violation.value
        previous = self.open.get(event.zone_id, violation)
        if kind is AlertEvent.START or previous is None:
            alert_id, seq = new_alert_id(), 1
            first_seen_at = iso_utc(self.wall_of(transition.first_seen_s))
        else:  # an earlier process's alert keeps its first_seen_at: stream times restart with the process
            alert_id, seq, first_seen_at = previous.id, previous.seq + 1, previous.first_seen_at
        snapshot = snapshot_error = None
        if kind is AlertEvent.START and self.evidence is not None:
            height, width = image.shape[:2]
            polygon_px = event.polygon * np.array([width, height], np.float32)
            try:
                snapshot = self.evidence.write(alert_id, image, polygon_px, f"{event.zone_id}: {violation}", transition.objects)
            except EvidenceSkipped as skipped:  # a full disk: the alert goes out without its JPEG
                snapshot_error = skipped.state
        p = self.provenance
        alert = Alert(
            id=alert_id,
            seq=seq,
            event=kind,
            type=violation,
            site=p.site,
            camera=p.camera,
            zone=event.zone_id,
            first_seen_s=round(transition.first_seen_s, 3),
            stream_time_s=round(transition.ts, 3),
            first_seen_at=first_seen_at,
            at=iso_utc(self.wall_of(transition.ts)),
            confidence=max((o.score for o in transition.objects), default=0.0),
            objects=tuple(AlertObject(o.label, o.score, o.box, o.track_id) for o in transition.objects),
            snapshot=snapshot,
            model=ModelStamp(p.model_name, p.model_sha256),
            config_sha256=p.config_sha256,
            gap_s=round(gap_s, 3),
            reason=transition.reason or None,
            snapshot_error=snapshot_error,
        )
        self.open.record(alert)
        return alert
