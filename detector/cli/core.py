"""`detector replay | check | score`: recorded clips, configs, scores."""

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlsplit

from detector.cli.common import camera_of, recorded_clip, seconds, site_time, wall_time
from detector.cli.operator import report_recorder, write_report
from detector.errors import ConfigError, OutputError, PublishError, redact_url


def add_commands(commands) -> None:
    replay = commands.add_parser("replay", help="run one camera over a recorded clip as fast as possible")
    replay.add_argument("config", type=Path)
    replay.add_argument("--camera", required=True, help="camera id in the config")
    replay.add_argument("--source", type=recorded_clip, help="clip to use instead of the camera's source")
    replay.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    replay.add_argument("--annotate", action="store_true", help="also write an annotated MP4")
    replay.add_argument(
        "--start-at",
        type=wall_time,
        help="wall-clock time of the clip's first frame (ISO 8601; without an offset: the config's timezone; default: now); "
        "drives schedules and `at`",
    )
    replay.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    replay.add_argument("--report", action="store_true", help="also write DIR/report.html (alerts, snapshots, timeline per zone)")
    replay.add_argument("--gt", type=Path, help="ground-truth YAML: score the replay in the report (implies --report)")
    replay.set_defaults(command=_replay)

    check = commands.add_parser("check", help="validate a config and open its model and sources")
    check.add_argument("config", type=Path, nargs="?")
    check.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of a config instead (for editors: validation, completion)"
    )
    check.set_defaults(command=_check)

    score = commands.add_parser("score", help="precision, recall, F1 and alarm latency of alerts against ground truth")
    score.add_argument(
        "events", type=Path, help="events.jsonl written by replay or run; or a folder of <camera>/events.jsonl: a suite of clips"
    )
    score.add_argument(
        "ground_truth", type=Path, help="ground-truth YAML (sample_videos/README.md); for a suite, a folder of <camera>.gt.yaml"
    )
    score.add_argument("--tolerance", type=seconds, default=10.0, help="seconds an alarm may come after a violation ended")
    score.add_argument(
        "--max-latency",
        type=seconds,
        help="suite only: an alarm later than this after its violation began fails the suite (e.g. dwell + 10 s)",
    )
    score.add_argument(
        "--versus",
        type=Path,
        metavar="EVENTS",
        help="suite only: another folder of replays of the same clips (another model), scored side by side in one table",
    )
    score.set_defaults(command=_score)


def _replay(args: argparse.Namespace) -> int:
    from detector.config import check_files, load_config
    from detector.replay import replay

    config = load_config(args.config)
    camera = camera_of(config, args.camera)
    check_files(config, cameras=[] if args.source else [camera.id])
    recorder = report_recorder(args)  # checks --gt before the replay, not after
    if args.out.exists() and not args.out.is_dir():
        raise OutputError(f"--out {args.out}: is a file, not a folder")
    try:
        summary = replay(
            config,
            camera.id,
            out_dir=args.out,
            source=args.source,
            annotate=args.annotate,
            start_at=site_time(args.start_at, config),
            progress=args.progress,
            on_frame=recorder.observe if recorder is not None else None,
        )
        report = write_report(args, config, camera, summary, recorder) if recorder is not None else None
    except OSError as exc:  # writing the output (a folder under a file, read-only, full); the video's are SourceErrors
        where = f" ({exc.filename})" if exc.filename and Path(exc.filename) != args.out else ""
        raise OutputError(f"--out {args.out}: cannot write there: {exc.strerror or exc}{where}") from None
    starts = sum(1 for a in summary.alerts if a.event == "start")
    speed = summary.stream_s / summary.wall_s if summary.wall_s else 0.0
    print(
        f"{summary.frames} frames, {summary.stream_s:.1f} s of stream in {summary.wall_s:.1f} s ({speed:.1f}x real time); "
        f"{starts} alerts, {len(summary.alerts)} events -> {summary.events_path}"
    )
    for stretch in summary.paused:
        print(stretch.describe())
    if summary.video_path:
        print(f"annotated video -> {summary.video_path}")
    if report is not None:
        print(f"report -> {report}")
    if summary.publish_problem:  # after the summary: the replay itself went fine
        raise PublishError(summary.publish_problem)
    return 0


def _check(args: argparse.Namespace) -> int:
    if args.schema:
        return _print_schema()
    if args.config is None:
        raise ConfigError("give a CONFIG (or --schema)")

    from detector.capture import FileSource
    from detector.config import check_files, load_config
    from detector.detect.focus import Focus
    from detector.worker import open_configured_model, role_map

    config = load_config(args.config)
    check_files(config)
    zones = sum(len(c.zones) for c in config.cameras)
    print(f"config ok: site {config.site}, {len(config.cameras)} cameras, {zones} zones")
    model = open_configured_model(config)
    print(f"model ok: {model.path} ({len(model.names)} classes, sha256 {model.digest[:12]})")
    roles = role_map(config, model.names)
    for unknown in roles.unknown:
        print(f"  warning: {unknown} is not a class of this model")
    for warning in blind_zones(config, roles):
        print(f"  warning: {warning}")
    for camera in config.cameras:
        if not camera.is_file:
            print(f"camera {camera.id}: {redact_url(camera.source)} (live sources are opened by `detector run`)")
            if _at_after_host(camera.source):
                print(
                    "  warning: an @ comes after a / ? or #, where FFmpeg ends the host name; "
                    "if the password holds / ? or #, write them %2F %3F %23 (docs/security.md)"
                )
            continue
        clip = FileSource(camera.source, fps=1.0).open()
        frames = sum(1 for _ in clip.frames())
        width, height = clip.stats.size
        input_hw = model.input_hw_for((height, width))
        print(
            f"camera {camera.id}: {camera.source} {width}x{height} @ {clip.nominal_fps:.1f} fps, "
            f"{clip.duration_s or 0:.1f} s, decodes ({frames} frames at 1 fps)"
            + (f", model input {input_hw[1]}x{input_hw[0]}" if input_hw else "")
        )
        print(f"  {_regions_text(Focus(config, camera, model).plan((height, width)), (height, width), model)}")
    return 0


def blind_zones(config, roles) -> list[str]:
    """A line per zone and type that the model cannot raise: no class plays any of the roles the
    type needs, and no fallback (the static-object detector, where the role takes its boxes)."""
    from detector.rules.violations import RULES

    def played(role) -> bool:
        return bool(roles.members[role.name][:-1].any()) or (role.static_objects and config.static_objects.enabled)

    lines = []
    for camera in config.cameras:
        for zone in camera.zones:
            for violation in zone.violations:
                ways = RULES[violation].ways()
                if not any(all(played(role) for role in way) for way in ways):
                    needs = " or ".join(" + ".join(role.name for role in way) for way in ways)
                    lines.append(
                        f"camera {camera.id} zone {zone.id}: {violation} needs a class for {needs} (config `roles`); "
                        "this model has none and there is no fallback: the zone never raises it"
                    )
    return lines


def _regions_text(regions: tuple, frame_hw: tuple[int, int], model) -> str:
    """Where the model looks on this camera's frames (detector/detect/regions.py)."""
    from detector.detect.regions import whole_frame

    if len(regions) == 1 and regions[0].is_whole(frame_hw):
        return "regions: the whole frame"
    long_side, stride = model.shaped_input()
    share = sum(r.cost(stride) for r in regions) / whole_frame(frame_hw, long_side).cost(stride)
    boxes = ", ".join(f"{r.x2 - r.x1}x{r.y2 - r.y1} at ({r.x1},{r.y1}) for {'+'.join(r.zones)}" for r in regions)
    return f"regions: {len(regions)}, {share:.2f} of the whole frame's input: {boxes}"


def _at_after_host(url: str) -> bool:
    """Whether an `@` follows the host part as FFmpeg (and urlsplit) read it: a password with an
    unencoded `/`, `?` or `#` makes FFmpeg connect to a "host" cut from the password. (Or an `@`
    in the path: hence a warning, not an error.)"""
    parts = urlsplit(url)
    return "@" in parts.path + parts.query + parts.fragment


def _print_schema() -> int:
    from detector.config.reference import json_schema  # not the model and video stacks `check` loads

    print(json.dumps(json_schema(), indent=2))
    return 0


def _score(args: argparse.Namespace) -> int:
    from detector import scoring

    if args.events.is_dir():
        return _score_suite(args)
    if args.max_latency is not None or args.versus is not None:
        raise ConfigError("--max-latency and --versus are for a suite (EVENTS a folder of <camera>/events.jsonl)")
    skipped: list[str] = []
    try:
        ground_truth = scoring.load_ground_truth(args.ground_truth)
        alarms = scoring.load_alerts(args.events, skipped)
    except FileNotFoundError as exc:
        raise ConfigError(f"file not found: {exc.filename}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for line in skipped:  # a line cut short by a crash or a full disk: the others still count
        print(f"detector: warning: {line}", file=sys.stderr)
    print(scoring.format_report(scoring.score(alarms, ground_truth, tolerance_s=args.tolerance)))
    return 0


def _score_suite(args: argparse.Namespace) -> int:
    """One row per clip, totals and a table per nuisance type (with --versus: two suites side by
    side); 1 when a clip fails (false alarm, miss, late alarm, alert ended and restarted)."""
    from detector import suite_scoring
    from detector.scoring import VIOLATION_TYPES

    if not args.ground_truth.is_dir():
        raise ConfigError(f"{args.ground_truth}: not a folder; with a folder of events, give the folder of <camera>.gt.yaml")
    limits = None if args.max_latency is None else dict.fromkeys(VIOLATION_TYPES, args.max_latency)
    skipped: list[str] = []
    suites = {}
    try:
        for events in [args.events] + ([args.versus] if args.versus else []):
            suites[str(events)] = suite_scoring.load_suite(
                events, args.ground_truth, tolerance_s=args.tolerance, max_latency_s=limits, warnings=skipped
            )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for line in skipped:
        print(f"detector: warning: {line}", file=sys.stderr)
    results = suites[str(args.events)]
    if args.versus:  # a comparison informs a choice: its exit status is the second suite's
        print(suite_scoring.format_comparison(suites))
        results = suites[str(args.versus)]
    else:
        print(suite_scoring.format_suite(results))
    return 0 if all(r.passed for r in results) else 1
