"""One camera's pipeline: frame -> view -> focus + model -> static objects -> tracker -> rules -> alerts -> sinks.

`CameraPipeline.build` is the one place a pipeline is assembled (replay, run, explain, tune and
the detections cache all use it). `process(frame)` returns a frozen `FrameResult`: the frame's
tracks, alerts and a snapshot of every (zone, type) rule, which is all the views (annotated
video, explain, report timeline, zone-state messages) read.

The view stage (detector/view.py) comes first: while the camera's view is moved or blocked the
model does not run, the tracker and rules are not fed, and the JudgedClock cuts that stretch out
of their time, so no timer passes and no alert starts or ends against zones the camera no longer
sees; when the view comes back the static-object backgrounds are learnt afresh. With
`view.resume: operator` it comes back only when an operator confirms (`confirm_view`).

The model runs where the focus says (detector/detect/focus.py): on crops over the zones, and only
on those where something moved or whose re-check is due; the tracker carries the objects of the
crops it did not look at.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from detector.alerts import Alert, AlertFactory, EvidenceWriter, OpenAlert, OpenAlerts, Provenance, Sink
from detector.capture import Frame
from detector.config import AppConfig, CameraConfig, config_digest
from detector.detect import Detector, open_model
from detector.detect.focus import Focus, Look
from detector.detect.static_objects import StaticObjectDetector
from detector.detections import Detections
from detector.rules.debounce import Candidate
from detector.rules.engine import Judgement, RuleSnapshot, ViolationEngine
from detector.rules.roles import RoleMap
from detector.rules.violations import ROLES, RULES
from detector.track import StationaryTracker
from detector.track.appearance import signatures
from detector.view import OK_FROM_START, JudgedClock, ViewMonitor, ViewState
from detector.view_confirm import ViewConfirmation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    frame: Frame
    tracks: Detections
    labels: tuple[str, ...]  # class names by class id (the model's, then `static_object`)
    alerts: tuple[Alert, ...]
    rules: tuple[RuleSnapshot, ...]
    open_alerts: dict[tuple[str, str], str]  # (zone, type) -> id of the alert open after this frame
    look: Look = Look(Detections.empty())  # where the model looked (regions, which ran) and its ms
    view: ViewState = OK_FROM_START  # paused (not ok): tracks are empty and the rules as last judged

    @property
    def inference_ms(self) -> float:
        return self.look.inference_ms

    def zone_states(self) -> dict[str, dict[str, dict]]:
        """{zone: {violation type: {"state": idle | pending | active, "alert_id": id or None}}}."""
        states: dict[str, dict[str, dict]] = {}
        for rule in self.rules:
            states.setdefault(rule.zone, {})[rule.violation.value] = {
                "state": rule.state.value,
                "alert_id": self.open_alerts.get((rule.zone, rule.violation.value)),
            }
        return states


def open_configured_model(config: AppConfig, threshold: float | None = None) -> Detector:
    """The config's model at the threshold every zone needs (`threshold`: lower, e.g. for a sweep)."""
    return open_model(config.model, config.model_threshold if threshold is None else threshold, config.detect.nms_iou)


def role_map(config: AppConfig, model_names: Sequence[str]) -> RoleMap:
    """The config's roles resolved against the model's class names."""
    return RoleMap.build(model_names, ROLES, config.roles.model_dump())


def uses_static_objects(config: AppConfig, camera: CameraConfig) -> bool:
    """The static-new-object detector runs for cameras with a zone whose type reads it (when enabled)."""
    return config.static_objects.enabled and any(RULES[v].uses_static_objects() for z in camera.zones for v in z.violations)


class CameraPipeline:
    """Stateful per camera; `process(frame)` runs every stage and emits alerts to the sinks."""

    def __init__(
        self,
        config: AppConfig,
        camera: CameraConfig,
        detector: Detector,
        *,
        sinks: Sequence[Sink],
        wall_of: Callable[[float], datetime],
        evidence: EvidenceWriter | None,
        open_alerts: OpenAlerts | None = None,
    ) -> None:
        self.camera = camera
        self.detector = detector
        self.sinks = list(sinks)
        self.roles = role_map(config, detector.names)
        for name in self.roles.unknown:
            log.warning("camera %s: %s is not a class of model %s; ignored", camera.id, name, detector.path.name)
        self.engine = ViolationEngine(camera.zones, config.violations, config.detect, self.roles, config.timezone)
        self.tracker = StationaryTracker(
            settle_s=config.track.settle_s,
            tolerance=config.track.tolerance,
            match_iou=config.track.match_iou,
            memory_s=self.engine.memory_s,
            places_s=max(self.engine.memory_s, self.engine.cooldown_s),
        )
        self._new_static_objects = lambda: (
            StaticObjectDetector(config.static_objects, self.roles.static_object_id)
            if uses_static_objects(config, camera)
            else None
        )
        self.static_objects = self._new_static_objects()
        self.focus = Focus(config, camera, detector)
        self.view_monitor = ViewMonitor(view) if (view := camera.view_settings(config.view)).enabled else None
        self.view = OK_FROM_START
        self.judged = JudgedClock()
        self._last_rules: tuple[RuleSnapshot, ...] = ()
        provenance = Provenance(config.site, camera.id, detector.path.name, detector.digest, config_digest(config))
        self.alerts = AlertFactory(provenance, wall_of, evidence, open_alerts)
        self.gap_s = 0.0

    @classmethod
    def build(
        cls,
        config: AppConfig,
        camera: CameraConfig,
        *,
        wall_of: Callable[[float], datetime],
        sinks: Sequence[Sink] = (),
        evidence: EvidenceWriter | None = None,
        open_alerts: OpenAlerts | None = None,
        detector: Detector | None = None,
        gate: Callable[[Detector], Detector] | None = None,
        model_threshold: float | None = None,
    ) -> "CameraPipeline":
        """The pipeline of `camera`, opening the configured model at the threshold every zone needs
        (`model_threshold`: lower, e.g. for a sweep's cache; `detector` instead of the model: a
        stand-in such as cached detections; `gate`: wraps the model, e.g. in the inference budget)."""
        if detector is None:
            detector = open_configured_model(config, model_threshold)
        if gate is not None:
            detector = gate(detector)
        return cls(config, camera, detector, sinks=sinks, wall_of=wall_of, evidence=evidence, open_alerts=open_alerts)

    def process(self, frame: Frame) -> FrameResult:
        self.watch(frame)
        if self.view.paused:
            return self.track_and_judge(Look(Detections.empty()), frame)
        return self.track_and_judge(self.detect(frame), frame)

    def watch(self, frame: Frame) -> ViewState:
        """Stage 0: is the view still the one the zones were drawn on? Logs each change; a view
        that comes back starts the static-object backgrounds afresh (the old ones saw the move)."""
        if self.view_monitor is None:
            return self.view
        view = self.view_monitor.update(frame.image, frame.ts)
        if view.status is not self.view.status:
            if view.paused:
                log.warning(
                    "camera %s: %s since %.1f s: %s; violation timers paused%s",
                    self.camera.id,
                    view.status.value,
                    view.since_s,
                    view.reason,
                    " until an operator confirms" if view.awaiting_operator else "",
                    extra={"kv": {"event": "view_changed", "state": view.status.value, "reason": view.reason}},
                )
            else:
                log.info(
                    "camera %s: view restored at %.1f s; violation timers resume",
                    self.camera.id,
                    view.since_s,
                    extra={"kv": {"event": "view_restored", "since_s": round(view.since_s, 1)}},
                )
                self.static_objects = self._new_static_objects()
                self.focus.reset()
        elif view.back and not self.view.back:
            log.warning(
                "camera %s: the view matches its reference again at %.1f s; paused until an operator confirms"
                " (detector view confirm)",
                self.camera.id,
                frame.ts,
                extra={"kv": {"event": "view_back", "state": view.status.value}},
            )
        self.view = view
        return view

    def confirm_view(self, confirmation: ViewConfirmation) -> bool:
        """An operator's confirmation of a paused view (detector/view_confirm.py); True if the view
        resumes (from the next frame). Logged either way, with who and when."""
        resumed = self.view_monitor is None or self.view_monitor.confirm(confirmation.accept_new_view)
        what = "the new view accepted as the reference" if confirmation.accept_new_view else "the view confirmed back"
        log.log(
            logging.INFO if resumed else logging.WARNING,
            "camera %s: %s by %s; %s",
            self.camera.id,
            what,
            confirmation.by,
            "violation timers resume" if resumed else f"still paused: the view differs from the reference ({self.view.reason})",
            extra={
                "kv": {
                    "event": "view_confirmed",
                    "by": confirmation.by,
                    "at": round(confirmation.at, 3),
                    "accept_new_view": confirmation.accept_new_view,
                    "resumed": resumed,
                }
            },
        )
        return resumed

    def detect(self, frame: Frame) -> Look:
        """Stage 1, the expensive one: model detections where the focus looks plus static new
        objects (with each box's appearance signature), and the model's ms.

        Its output depends only on the frames, the model, its threshold and the focus settings,
        so `detector tune` caches it (detector/operator/cache.py) and replays only stage 2 per
        combination.
        """
        look = self.focus.look(frame.image, frame.ts)
        detections = look.detections
        if self.static_objects is not None:  # what the model saw, here or where it did not look now, is no new object
            found = self.static_objects.update(frame.image, frame.ts, Detections.merge([detections, look.remembered]))
            detections = Detections.merge([detections, found])
        # each box's look, for the tracker to tell another object on the same place
        return replace(look, detections=detections.with_data(appearance=signatures(frame.image, detections.xyxy)))

    def track_and_judge(self, look: Look, frame: Frame) -> FrameResult:
        """Stage 2: tracker -> rules -> debouncers -> alerts to the sinks. Cheap; stateful.

        They run on judged time (stream time with the paused views cut out); what they return is
        put back on stream time, so payloads and views read stream time only."""
        self.gap_s += frame.gap_before_s
        judged_ts = self.judged.advance(frame.ts, self.view.paused)
        if judged_ts is None:
            held = self._last_rules  # as last judged: the states stand still while paused
            return FrameResult(frame, Detections.empty(), self.roles.labels, (), held, self.alerts.open.ids(), look, self.view)
        tracks = self.tracker.update(look.detections, judged_ts, look.coverage)
        height, width = frame.image.shape[:2]
        judgement = self.engine.update(tracks, judged_ts, self.alerts.wall_of(frame.ts), width, height)
        tracks, judgement = self._on_stream_time(tracks, judgement)
        self._last_rules = judgement.rules
        alerts = []
        for event in judgement.events:
            alert = self.alerts.build(event, frame.image, self.gap_s)
            for sink in self.sinks:
                sink.emit(alert)
            alerts.append(alert)
        self.alerts.open.save()  # after the sinks: the outbox holds every event the file counts
        return FrameResult(
            frame, tracks, self.roles.labels, tuple(alerts), judgement.rules, self.alerts.open.ids(), look, self.view
        )

    def _on_stream_time(self, tracks: Detections, judgement: Judgement) -> tuple[Detections, Judgement]:
        """The tracker's and rules' judged times (settle, dwell, alert times) as stream times."""
        to_stream = self.judged.stream_of
        if "settled_since" in tracks.data:
            tracks = tracks.with_data(settled_since=to_stream(tracks.data["settled_since"]))
        events = tuple(
            replace(e, transition=replace(t, ts=to_stream(t.ts), first_seen_s=to_stream(t.first_seen_s)))
            for e in judgement.events
            for t in (e.transition,)
        )
        rules = tuple(
            replace(
                r,
                pending_since=None if r.pending_since is None else to_stream(r.pending_since),
                active_since=None if r.active_since is None else to_stream(r.active_since),
            )
            for r in judgement.rules
        )
        return tracks, Judgement(events, rules)

    def restore_open_alerts(self, ts: float = 0.0) -> list[OpenAlert]:
        """Put alerts an earlier process left open back as ACTIVE (docs/edge.md); returns them."""

        def resume(alert: OpenAlert) -> bool:
            objects = tuple(
                Candidate(-1 if o.track_id is None else o.track_id, ts, o.box, o.label, o.score) for o in alert.objects
            )
            if not self.engine.restore(alert.zone, alert.type, ts, objects):
                log.warning("open alert %s: zone %s / %s no longer configured; dropped", alert.id, alert.zone, alert.type)
                return False
            log.info(
                "restored open alert %s (%s/%s, seq %d)",
                alert.id,
                alert.zone,
                alert.type,
                alert.seq,
                extra={"kv": {"event": "alert_restored", "id": alert.id, "zone": alert.zone, "seq": alert.seq}},
            )
            return True

        return self.alerts.open.restore(resume)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
