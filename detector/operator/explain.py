"""`detector explain`: why an alert did or did not fire for one zone in a stream-time range.

Replays the clip with the real pipeline up to --to (over cached detections when `detector tune`
has cached this clip, else running the model) and describes, per sampled frame in the range,
what the zone's rule saw: each object of the type's classes (track id, label, score), whether
its anchor is in the zone, whether it is stationary (settled since / still for), its score
against min_score, and the state machine (idle / pending / active, dwell timer). Consecutive
frames that say the same thing are condensed into one line; transitions get their own line, and
so do the view's pauses (">> 15.0 s  view_blocked (since 10.0 s): ...; timers paused", "view
restored"): a paused stretch is not judged, which is why a dwell across it took longer.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from detector.alerts import Alert, AlertEvent
from detector.capture import open_source
from detector.config import AppConfig, CameraConfig, ViolationType
from detector.detect.static_objects import Rejection, StaticObjectReport
from detector.errors import ConfigError
from detector.operator.cache import cached_detections
from detector.operator.observe import ObjectView, RuleView, view_rules
from detector.operator.rules_only import replay_rules
from detector.rules.violations import RULES
from detector.view import OK_FROM_START, ViewState
from detector.worker import CameraPipeline, FrameResult


@dataclass
class RuleLog:
    zone: str
    violation: str
    settings: dict
    before: tuple[float, RuleView] | None = None  # the last frame before the range
    frames: list[tuple[float, RuleView, list[Alert]]] = field(default_factory=list)


def explain(
    config: AppConfig,
    camera: CameraConfig,
    zone_id: str,
    *,
    violation: str | None,
    from_s: float,
    to_s: float,
    source: Path | None = None,
    cache_dir: Path | None = None,
    origin: datetime,
) -> tuple[list[str], str]:
    """(lines, how): the explanation and how the frames were obtained (cache or model)."""
    rules = _select_rules(config, camera, zone_id, violation)
    if to_s < from_s:
        raise ConfigError(f"--to {to_s:g} is before --from {from_s:g}")
    logs = {(z.id, v.value): RuleLog(z.id, v.value, _settings(config, z, v)) for z, v in rules}

    def on_frame(result: FrameResult) -> None:
        ts = result.frame.ts
        for view in view_rules(result):
            log = logs.get((view.zone, view.violation))
            if log is None:
                continue
            if ts < from_s - 1e-9:
                log.before = (ts, view)
            elif ts <= to_s + 1e-9:
                alerts = [a for a in result.alerts if a.key == (view.zone, view.violation)]
                log.frames.append((ts, view, alerts))

    clip = Path(source or camera.source)
    if not camera.is_file and source is None:
        raise ConfigError(f"camera {camera.id} is a live source; give --source FILE (a recording of it)")
    cache = None
    if cache_dir is not None:
        cache, _ = cached_detections(config, camera, clip, config.model_threshold, cache_dir, build=False)
    static: list[tuple[float, StaticObjectReport]] = []  # the static-object detector's, in range
    if cache is not None:
        replay_rules(config, camera, cache, origin=origin, on_frame=on_frame, until_s=to_s)
        how = f"cached detections ({cache.meta['clip']})"  # no static-object reasons: cached detections only
    else:
        for result, report in _live(config, camera, clip, origin, to_s):
            on_frame(result)
            if report is not None and result.frame.ts >= from_s - 1e-9:
                static.append((result.frame.ts, report))
        how = f"model over {clip}"
    lines = []
    for log in logs.values():
        lines += describe(log, from_s, to_s)
        if RULES[ViolationType(log.violation)].uses_static_objects():
            lines += describe_static(static)
    return lines, how


def _live(
    config: AppConfig, camera: CameraConfig, clip: Path, origin: datetime, to_s: float
) -> Iterator[tuple[FrameResult, StaticObjectReport | None]]:
    """Each frame's result and the static-object detector's report of it (None: not run)."""
    pipeline = CameraPipeline.build(config, camera, wall_of=lambda ts: origin + timedelta(seconds=ts))
    previous = None
    for frame in open_source(clip, config.detect.fps).frames():
        if frame.ts > to_s + 1e-9:
            break
        result = pipeline.process(frame)
        report = pipeline.static_objects.last if pipeline.static_objects is not None else None
        yield result, (report if report is not previous else None)  # the same report: not run this frame
        previous = report


def _select_rules(config: AppConfig, camera: CameraConfig, zone_id: str, violation: str | None):
    zone = next((z for z in camera.zones if z.id == zone_id), None)
    if zone is None:
        known = ", ".join(z.id for z in camera.zones) or "none"
        raise ConfigError(f"camera {camera.id} has no zone {zone_id!r} (zones: {known})")
    if violation is None:
        return [(zone, v) for v in zone.violations]
    if violation not in {v.value for v in ViolationType}:
        raise ConfigError(f"--type {violation!r}: must be one of {', '.join(v.value for v in ViolationType)}")
    if ViolationType(violation) not in zone.violations:
        raise ConfigError(f"zone {zone_id} does not check {violation} (it checks {', '.join(v.value for v in zone.violations)})")
    return [(zone, ViolationType(violation))]


def _settings(config: AppConfig, zone, violation: ViolationType) -> dict:
    settings = zone.settings_for(violation, config.violations, config.detect)
    return {
        **settings.model_dump(),
        "settle_s": config.track.settle_s,
        "tolerance": config.track.tolerance,
        "anchor": zone.anchor.value,
    }


def describe(log: RuleLog, from_s: float, to_s: float) -> list[str]:
    s = log.settings
    lines = [
        f"zone {log.zone} · {log.violation}  (dwell_s {s['dwell_s']:g}, grace_s {s['grace_s']:g}, clear_s {s['clear_s']:g}, "
        f"min_score {s['min_score']:g}, settle_s {s['settle_s']:g}, tolerance {s['tolerance']:g}, anchor {s['anchor']})",
    ]
    if log.before is not None:
        ts, view = log.before
        lines.append(f"  before {from_s:g} s: {_state(view, ts, s)}")
    if not log.frames:
        lines.append(f"  no sampled frame in {from_s:g}-{to_s:g} s (is the range inside the clip?)")
        return lines
    previous_state = log.before[1].state if log.before is not None else "idle"
    previous_view = log.before[1].view if log.before is not None else OK_FROM_START
    run: list[tuple[float, RuleView]] = []
    seen: dict[int, tuple] = {}  # in-zone objects of the current run: track id -> category
    for ts, view, alerts in log.frames:
        categories = {o.track_id: _category(o, s) for o in view.objects if o.in_zone}
        # a new object, or one that changes category, starts a new line; a missed detection does not
        changed = any(
            seen.get(track_id, category) != category or track_id not in seen for track_id, category in categories.items()
        )
        view_changed = view.view.status is not previous_view.status
        if run and (changed or view.state != previous_state or alerts or view_changed):
            lines.append(_run_line(run, s))
            run, seen = [], {}
        if view_changed:
            lines.append(_view_line(ts, view.view))
            previous_view = view.view
        if view.state != previous_state or alerts:
            lines += _transition_lines(ts, previous_state, view, alerts, s)
            previous_state = view.state
        run.append((ts, view))
        seen.update(categories)
    if run:
        lines.append(_run_line(run, s))
    lines.append("  verdict: " + _verdict(log, s))
    return lines


def describe_static(reports: list[tuple[float, StaticObjectReport]]) -> list[str]:
    """One line per reason the static-object detector passed over blobs in the range: the most
    in one frame, the frames, and the light or scene change at its strongest, e.g.
    "14 blobs rejected in 25.0-43.0 s (the light changed: scene brightness -38 %)"."""
    lines = []
    for reason in Rejection:
        frames = [(ts, r) for ts, r in reports if reason in r.counts()]
        if not frames:
            continue
        most = max(r.counts()[reason] for _, r in frames)
        darkest = min((r.brightness for _, r in frames), key=lambda b: -abs(b - 1))
        changed = max(max(r.changed, r.moving) for _, r in frames)
        why = {
            Rejection.LIGHTING: f"the light changed: scene brightness {(darkest - 1) * 100:+.0f} %",
            Rejection.SCENE_CHANGE: f"the scene changed: {changed * 100:.0f} % of the frame at once",
            Rejection.TOO_LARGE: "larger than static_objects.max_area",
            Rejection.OCCUPIED: "where the model saw an object",
            Rejection.GHOST: "something left rather than arrived",
            Rejection.KNOWN: "in the scene minutes ago: washed out by fog, exposure or IR, not new",
        }[reason]
        span = f"{frames[0][0]:.1f}-{frames[-1][0]:.1f} s ({len(frames)} frames)"
        lines.append(f"  static-object detector: up to {most} blobs rejected in {span}: {reason.value} ({why})")
    return lines


def _category(o: ObjectView, s: dict) -> tuple:
    """The categorical part of an in-zone object's description (no times or scores)."""
    return (o.label, o.stationary, o.score >= s["min_score"], o.candidate)


def _state(view: RuleView, ts: float, s: dict) -> str:
    if view.state == "pending" and view.pending_since is not None:
        return f"pending, dwell {ts - view.pending_since:.1f}/{s['dwell_s']:g} s (since {view.pending_since:.1f} s)"
    if view.state == "active" and view.active_since is not None:
        return f"active (alert open; first seen {view.active_since:.1f} s)"
    return view.state


def _view_line(ts: float, view: ViewState) -> str:
    if not view.paused:
        return f"  >> {ts:.1f} s  view restored (since {view.since_s:.1f} s); timers resume"
    until = " until an operator confirms" if view.awaiting_operator else ""
    return f"  >> {ts:.1f} s  {view.status.value} (since {view.since_s:.1f} s): {view.reason}; timers paused{until}"


def _run_line(run: list[tuple[float, RuleView]], s: dict) -> str:
    """One line for a run of frames: state and dwell timer, each in-zone object with its score
    range and how often it was seen, and the objects outside the zone by id."""
    (t0, first), (t1, last) = run[0], run[-1]
    span = f"{t0:7.1f} s" if len(run) == 1 else f"{t0:7.1f}-{t1:.1f} s ({len(run)} frames)"
    if last.view.paused:  # a dwell on stream time would count the pause: the state only
        return f"  {span}  {last.state}, held: {last.view.status.value}, the model does not run and the timers stand still"
    state = _state(last, t1, s)
    if last.state == "pending" and first.pending_since is not None and len(run) > 1:
        state = (
            f"pending, dwell {t0 - first.pending_since:.1f}->{t1 - last.pending_since:.1f}/{s['dwell_s']:g} s"
            f" (since {last.pending_since:.1f} s)"
        )
    inside: dict[int, list[tuple[float, ObjectView]]] = {}
    outside: dict[int, str] = {}
    for ts, view in run:
        for o in view.objects:
            if o.in_zone:
                inside.setdefault(o.track_id, []).append((ts, o))
            else:
                outside.setdefault(o.track_id, o.label)
    parts = [_object_text(sightings, len(run), s) for _, sightings in sorted(inside.items())]
    text = "; ".join(parts) if parts else "nothing of the type's classes in the zone"
    if outside:
        text += " | outside the zone: " + ", ".join(f"#{i} {label}" for i, label in sorted(outside.items()))
    return f"  {span}  {state}: {text}"


def _object_text(sightings: list[tuple[float, ObjectView]], frames: int, s: dict) -> str:
    ts, o = sightings[-1]
    scores = [x.score for _, x in sightings]
    score = f"{scores[0]:.2f}" if min(scores) == max(scores) else f"{min(scores):.2f}-{max(scores):.2f}"
    seen = "" if len(sightings) == frames else f", seen in {len(sightings)}/{frames} frames"
    head = f"#{o.track_id} {o.label} score {score}"
    if o.score < s["min_score"]:
        return f"{head} < min_score {s['min_score']:g}{seen}"
    still = ts - o.settled_since
    if not o.stationary:
        if still + 1e-9 >= s["settle_s"]:
            return f"{head}, settled {o.settled_since:.1f} s but detected too rarely since to count as stationary{seen}"
        return f"{head}, moving (settled {o.settled_since:.1f} s, still {still:.1f} < settle_s {s['settle_s']:g} s){seen}"
    tail = "-> candidate" if o.candidate else "(not a candidate: the rule needs more, e.g. an item by a person, or it is held)"
    hidden = sum(x.hidden for _, x in sightings)
    if hidden:
        seen += f", hidden behind another object in {hidden}/{len(sightings)} frames"
    carried = sum(x.carried for _, x in sightings)
    if carried:
        seen += f", carried in {carried}/{len(sightings)} frames (no motion there: not looked at)"
    if o.replaces:
        seen += f", took the place of #{o.replaces} (looks different: another object)"
    return f"{head}, stationary since {o.settled_since:.1f} s (still {still:.1f} s){seen} {tail}"


def _transition_lines(ts: float, before: str, view: RuleView, alerts: list[Alert], s: dict) -> list[str]:
    lines = []
    if view.state != before:
        why = {
            ("idle", "pending"): "a candidate is stationary in the zone",
            ("pending", "idle"): f"no candidate for grace_s {s['grace_s']:g} s",
            ("pending", "active"): f"a candidate stationary for dwell_s {s['dwell_s']:g} s",
            ("idle", "active"): f"a candidate stationary for dwell_s {s['dwell_s']:g} s",
            ("active", "idle"): f"no candidate for clear_s {s['clear_s']:g} s (or the schedule closed)",
            ("active", "pending"): "alert ended; another candidate is pending",
        }.get((before, view.state), "")
        lines.append(f"  >> {ts:.1f} s  {before} -> {view.state}" + (f": {why}" if why else ""))
    for alert in alerts:
        extra = f", reason {alert.reason}" if alert.reason else ""
        lines.append(
            f"  >> {ts:.1f} s  alert {alert.event.upper()} (first seen {alert.first_seen_s:.1f} s, "
            f"confidence {alert.confidence:.2f}{extra})"
        )
    return lines


def _verdict(log: RuleLog, s: dict) -> str:
    paused = [ts for ts, v, _ in log.frames if v.view.paused]
    verdict = _judged_verdict(log, s)
    if paused:
        verdict += f" (the view was paused in {paused[0]:.1f}-{paused[-1]:.1f} s: {len(paused)} frames not judged)"
    return verdict


def _judged_verdict(log: RuleLog, s: dict) -> str:
    starts = [(ts, a) for ts, _, alerts in log.frames for a in alerts if a.event is AlertEvent.START]
    if starts:
        ts, alert = starts[0]
        return f"alert started at {ts:.1f} s: a candidate stationary since {alert.first_seen_s:.1f} s reached dwell_s {s['dwell_s']:g} s"
    views = [(ts, v) for ts, v, _ in log.frames]
    if any(v.state == "active" for _, v in views):
        return "an alert was already open in this range (started before it)"
    objects = [o for _, v in views for o in v.objects]
    if not objects:
        return f"no alert: no object of the {log.violation} classes was seen"
    inside = [o for o in objects if o.in_zone]
    if not inside:
        return "no alert: objects were seen, but none with its anchor in the zone"
    scored = [o for o in inside if o.score >= s["min_score"]]
    if not scored:
        best = max(o.score for o in inside)
        return f"no alert: objects in the zone scored at most {best:.2f} < min_score {s['min_score']:g}"
    if not any(o.stationary for o in scored):
        return f"no alert: objects in the zone never stayed put for settle_s {s['settle_s']:g} s (moving)"
    if not any(o.candidate for o in scored):
        return "no alert: stationary objects in the zone were not candidates of the rule"
    seen = [(ts, v) for ts, v in views if v.pending_since is not None and any(o.candidate for o in v.objects)]
    dwell = max((ts - v.pending_since for ts, v in seen), default=0.0)
    last = max((ts for ts, _ in seen), default=None)
    tail = f"; last candidate seen at {last:.1f} s" if last is not None else ""
    return f"no alert in range: a candidate was present for at most {dwell:.1f} s of dwell_s {s['dwell_s']:g} s{tail}"
