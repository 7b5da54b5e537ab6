"""`detector centre-false-alarms CONFIG --out DIR`: the alerts of REJECTED cases, for the model
loop. DIR/events.jsonl holds their events as published, DIR/feedback.jsonl the dispatchers'
marks in the format of `detector feedback`; `detector feedback DIR/events.jsonl ID --false-alarm
--dataset DS ...` then puts an alert's clean frame into a dataset as a hard negative."""

import json
from pathlib import Path

from detector.alerts.factory import iso_utc
from detector.centre.lifecycle import State
from detector.centre.models import Alert
from detector.dataset.feedback import FALSE_ALARM, FEEDBACK_FILE, Mark


def export(out: Path) -> int:
    """Write both files (replacing earlier ones); the number of alerts."""
    out.mkdir(parents=True, exist_ok=True)
    alerts = Alert.objects.filter(false_alarm=True).select_related("case__camera").order_by("id")
    with open(out / "events.jsonl", "w", encoding="utf-8") as events, open(out / FEEDBACK_FILE, "wb") as marks:
        for alert in alerts:
            for event in alert.events.order_by("seq"):
                payload = event.payload | {"delayed": False}  # as events.jsonl has it: delayed is the wire's
                events.write(json.dumps(payload, ensure_ascii=False, separators=(",", ":")) + "\n")
            rejected = alert.case.transitions.filter(to_state=State.REJECTED.value).order_by("-at").first()
            mark = Mark(
                alert_id=alert.alert_id,
                type=alert.type,
                camera=alert.case.camera.camera,
                zone=alert.zone,
                mark=FALSE_ALARM,
                note=rejected.note if rejected else "",
                at=iso_utc(rejected.at) if rejected else "",
            )
            marks.write(mark.to_line())
    return alerts.count()
