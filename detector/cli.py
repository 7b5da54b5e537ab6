"""Command line: `detector replay | check | score` (see README.md)."""

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from detector import __version__
from detector.errors import ConfigError, DetectorError, PublishError, redact_url

log = logging.getLogger("detector")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from detector import logs

    logs.configure(args.log_format, args.verbose, camera=getattr(args, "camera", None) if args.command is _worker else None)
    try:
        return args.command(args) or 0
    except DetectorError as exc:
        print(f"detector: error: {redact_url(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("detector: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="detector", description="Violation detector for city surveillance feeds.")
    parser.add_argument("--version", action="version", version=f"detector {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument(
        "--log-format", choices=("text", "kv"), default="text", help="stderr log lines: text, or kv (key=value, for journals)"
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    replay = commands.add_parser("replay", help="run one camera over a recorded clip as fast as possible")
    replay.add_argument("config", type=Path)
    replay.add_argument("--camera", required=True, help="camera id in the config")
    replay.add_argument("--source", type=Path, help="clip to use instead of the camera's source")
    replay.add_argument("--out", type=Path, default=Path("out"), help="output folder (default: out)")
    replay.add_argument("--annotate", action="store_true", help="also write an annotated MP4")
    replay.add_argument(
        "--start-at",
        type=datetime.fromisoformat,
        help="wall-clock time of the clip's first frame (ISO 8601; default: now); drives schedules and `at`",
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
    check.add_argument("config", type=Path)
    check.set_defaults(command=_check)

    score = commands.add_parser("score", help="precision, recall, F1 and alarm latency of alerts against ground truth")
    score.add_argument("events", type=Path, help="events.jsonl written by replay or run")
    score.add_argument("ground_truth", type=Path, help="ground-truth YAML (sample_videos/README.md)")
    score.add_argument("--tolerance", type=float, default=10.0, help="seconds an alarm may come after a violation ended")
    score.set_defaults(command=_score)
    _add_mqtt_commands(commands)
    _add_run_commands(commands)
    _add_operator_commands(commands)
    return parser


def _replay(args: argparse.Namespace) -> int:
    from detector.config import check_files, load_config
    from detector.replay import replay

    config = load_config(args.config)
    if args.source is None:
        check_files(config)
    camera = _camera(config, args.camera)
    recorder = _report_recorder(args)  # checks --gt before the replay, not after
    summary = replay(
        config,
        camera.id,
        out_dir=args.out,
        source=args.source,
        annotate=args.annotate,
        start_at=args.start_at,
        progress=args.progress,
        on_frame=recorder.observe if recorder is not None else None,
    )
    starts = sum(1 for a in summary.alerts if a["event"] == "start")
    speed = summary.stream_s / summary.wall_s if summary.wall_s else 0.0
    print(
        f"{summary.frames} frames, {summary.stream_s:.1f} s of stream in {summary.wall_s:.1f} s ({speed:.1f}x real time); "
        f"{starts} alerts, {len(summary.alerts)} events -> {summary.events_path}"
    )
    if summary.video_path:
        print(f"annotated video -> {summary.video_path}")
    if recorder is not None:
        print(f"report -> {_write_report(args, config, camera, summary, recorder)}")
    if summary.publish_problem:  # after the summary: the replay itself went fine
        raise PublishError(summary.publish_problem)
    return 0


def _check(args: argparse.Namespace) -> int:
    from detector.capture import FileSource
    from detector.config import check_files, load_config
    from detector.detect import open_model
    from detector.replay import model_threshold
    from detector.rules import RoleMap

    config = load_config(args.config)
    check_files(config)
    zones = sum(len(c.zones) for c in config.cameras)
    print(f"config ok: site {config.site}, {len(config.cameras)} cameras, {zones} zones")
    model = open_model(config.model, model_threshold(config), config.detect.nms_iou)
    print(f"model ok: {model.path} ({len(model.names)} classes, sha256 {model.digest[:12]})")
    for unknown in RoleMap.build(model.names, config.roles).unknown:
        print(f"  warning: {unknown} is not a class of this model")
    for camera in config.cameras:
        if not camera.is_file:
            print(f"camera {camera.id}: {redact_url(camera.source)} (live sources are opened by `detector run`)")
            continue
        clip = FileSource(camera.source)
        frames = sum(1 for _ in clip.frames(fps=1.0))
        print(
            f"camera {camera.id}: {camera.source} {clip.width}x{clip.height} @ {clip.nominal_fps:.1f} fps, "
            f"{clip.duration_s or 0:.1f} s, decodes ({frames} frames at 1 fps)"
        )
    return 0


def _score(args: argparse.Namespace) -> int:
    from detector import scoring

    try:
        ground_truth = scoring.load_ground_truth(args.ground_truth)
        alarms = scoring.load_events(args.events)
    except FileNotFoundError as exc:
        raise ConfigError(f"file not found: {exc.filename}") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    print(scoring.format_report(scoring.score(alarms, ground_truth, tolerance_s=args.tolerance)))
    return 0


def _camera(config, camera_id: str):
    try:
        return config.camera(camera_id)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None


# --- MQTT: `detector listen`, `detector outbox` (issue 3; docs/mqtt.md) ---


def _add_mqtt_commands(commands) -> None:
    listen = commands.add_parser("listen", help="print what detectors publish over MQTT (alerts, status, zone states)")
    listen.add_argument("--config", type=Path, help="take broker, credentials and prefix from this config's mqtt section")
    listen.add_argument("--host", help="broker host (default: localhost)")
    listen.add_argument("--port", type=int, help="broker port (default: 1883, 8883 with TLS)")
    listen.add_argument("--prefix", help="topic prefix (default: detector)")
    listen.add_argument("--username")
    listen.add_argument("--password-env", metavar="VAR", help="environment variable holding the password")
    listen.add_argument("--tls", action="store_true", help="TLS with the system CAs (implied by --tls-ca)")
    listen.add_argument("--tls-ca", type=Path, help="CA certificate file")
    listen.add_argument("--tls-cert", type=Path, help="client certificate file")
    listen.add_argument("--tls-key", type=Path, help="client key file")
    listen.add_argument("--tls-insecure", action="store_true", help="skip the server hostname check (testing only)")
    listen.add_argument("--json", action="store_true", help="one JSON object per message: topic, retain, payload")
    listen.add_argument("--health", action="store_true", help="also print health messages")
    listen.add_argument("--count", type=int, help="exit after this many alerts")
    listen.add_argument("--timeout", type=float, help="exit after this many seconds")
    listen.set_defaults(command=_listen)

    outbox = commands.add_parser("outbox", help="list the alerts waiting in the local outbox (or send them)")
    outbox.add_argument("config", type=Path)
    action = outbox.add_mutually_exclusive_group()
    action.add_argument("--drain", action="store_true", help="send them to the configured broker now")
    action.add_argument("--purge", action="store_true", help="delete them without sending")
    outbox.add_argument("--timeout", type=float, help="with --drain: seconds to wait (default: mqtt.drain_timeout_s)")
    outbox.set_defaults(command=_outbox)


def _listen(args: argparse.Namespace) -> int:
    import os

    from detector.config import load_config
    from detector.mqtt.connection import Endpoint
    from detector.mqtt.listen import listen

    base, prefix = Endpoint(host="localhost"), "detector"
    if args.config is not None:
        config = load_config(args.config)
        if config.mqtt is None:
            raise ConfigError(f"{args.config}: no mqtt section")
        base, prefix = Endpoint.from_config(config.mqtt), config.mqtt.topic_prefix
    password = base.password
    if args.password_env:
        if args.password_env not in os.environ:
            raise ConfigError(f"--password-env: environment variable {args.password_env} is not set")
        password = os.environ[args.password_env]
    use_tls = base.use_tls or args.tls or any(v is not None for v in (args.tls_ca, args.tls_cert, args.tls_key))
    endpoint = Endpoint(
        host=args.host or base.host,
        port=args.port or (base.port if args.config else (8883 if use_tls else 1883)),
        username=args.username or base.username,
        password=password,
        tls_ca=args.tls_ca or base.tls_ca,
        tls_cert=args.tls_cert or base.tls_cert,
        tls_key=args.tls_key or base.tls_key,
        tls_insecure=args.tls_insecure or base.tls_insecure,
        use_tls=use_tls,
    )
    return listen(
        endpoint, args.prefix or prefix, as_json=args.json, health=args.health, count=args.count, timeout_s=args.timeout
    )


def _outbox(args: argparse.Namespace) -> int:
    from detector.config import load_config
    from detector.mqtt import backlog

    config = load_config(args.config)
    if args.purge:
        from detector.mqtt.outbox import Outbox

        for camera, path in backlog.outbox_files(config):
            outbox = Outbox(path)
            print(f"{camera}: deleted {outbox.clear()} waiting entries")
            outbox.close()
        return 0
    lines = backlog.drain(config, args.timeout) if args.drain else backlog.describe(config)
    print("\n".join(lines))
    return 0


# --- the edge box: `detector run`, `detector status`, hidden `detector worker` (issue 4; docs/edge.md) ---


def _add_run_commands(commands) -> None:
    run = commands.add_parser("run", help="the edge box's main job: one supervised worker process per camera")
    run.add_argument("config", type=Path)
    run.set_defaults(command=_run)
    status = commands.add_parser("status", help="health of each camera of a running `detector run`")
    status.add_argument("config", type=Path)
    status.add_argument("--json", action="store_true", help="the health reports as one JSON object")
    status.set_defaults(command=_status)
    worker = commands.add_parser("worker")  # started by `detector run`; no help: not listed
    worker.add_argument("config", type=Path)
    worker.add_argument("--camera", required=True)
    worker.add_argument("--slots", type=Path, help="inference slot folder made by the supervisor")
    worker.set_defaults(command=_worker)


def _run(args: argparse.Namespace) -> int:
    from detector.supervisor import Supervisor

    return Supervisor(args.config, log_format=args.log_format, verbose=args.verbose).run()


def _status(args: argparse.Namespace) -> int:
    import json

    from detector.config import load_config
    from detector.health import read_health, status_lines

    config = load_config(args.config)
    if args.json:
        print(json.dumps({c.id: read_health(config.storage_dir, c.id) for c in config.cameras}, indent=1))
    else:
        print("\n".join(status_lines(config)))
    return 0


def _worker(args: argparse.Namespace) -> int:
    from detector.supervisor import worker_main

    return worker_main(args.config, args.camera, args.slots)


# --- operator tools: `detector zones | explain | tune`, `replay --report` (issue 5; docs/operators.md) ---


def _add_operator_commands(commands) -> None:
    zones = commands.add_parser("zones", help="draw and edit a camera's zones in the browser, on a frame of its video")
    zones.add_argument("config", type=Path)
    zones.add_argument("--camera", required=True, help="camera id in the config")
    zones.add_argument("--source", type=Path, help="clip to show instead of the camera's source")
    zones.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (default: 8765; 0: any free port)")
    zones.add_argument("--no-browser", action="store_true", help="only print the address")
    zones.set_defaults(command=_zones)

    explain = commands.add_parser("explain", help="why an alert did or did not fire for a zone in a stream-time range")
    explain.add_argument("config", type=Path)
    explain.add_argument("--camera", required=True, help="camera id in the config")
    explain.add_argument("--zone", required=True, help="zone id")
    explain.add_argument("--type", dest="violation", help="violation type (default: every type of the zone)")
    explain.add_argument("--from", dest="from_s", type=float, default=0.0, help="stream seconds (default: 0)")
    explain.add_argument("--to", dest="to_s", type=float, required=True, help="stream seconds")
    explain.add_argument("--source", type=Path, help="clip to use instead of the camera's source")
    explain.add_argument("--cache", type=Path, help="detections cache of `detector tune` (default: STORAGE_DIR/cache)")
    explain.add_argument("--start-at", type=datetime.fromisoformat, help="wall-clock time of the first frame (schedules)")
    explain.set_defaults(command=_explain)

    tune = commands.add_parser("tune", help="sweep dwell/score/tracker settings over cached detections against ground truth")
    tune.add_argument("config", type=Path)
    tune.add_argument("--camera", required=True, help="camera id in the config")
    tune.add_argument("--gt", type=Path, action="append", required=True, help="ground-truth YAML (repeat for several clips)")
    tune.add_argument(
        "--set", dest="sets", action="append", required=True, metavar="KEY=V1,V2",
        help="values to try: dwell_s, grace_s, clear_s, cooldown_s, update_s, min_score (TYPE.KEY for one type), "
        "track.settle_s, track.tolerance, track.match_iou",
    )
    tune.add_argument("--source", type=Path, help="clip (with one --gt; default: the ground truth's clip, else the camera's)")
    tune.add_argument("--cache", type=Path, help="detections cache folder (default: STORAGE_DIR/cache)")
    tune.add_argument("--tolerance", type=float, default=10.0, help="seconds an alarm may come after a violation ended")
    tune.add_argument("--start-at", type=datetime.fromisoformat, help="wall-clock time of the first frame (schedules; default: fixed)")
    tune.set_defaults(command=_tune)


def _report_recorder(args: argparse.Namespace):
    if not (args.report or args.gt):
        return None
    from detector import scoring
    from detector.operator.timeline import TimelineRecorder

    if args.gt is not None:
        try:
            scoring.load_ground_truth(args.gt)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return TimelineRecorder()


def _write_report(args, config, camera, summary, recorder) -> Path:
    from detector.operator.report import ReportInputs, write_report

    return write_report(
        ReportInputs(
            out_dir=args.out,
            camera=camera.id,
            clip=str(args.source or camera.source),
            config=str(args.config),
            frames=summary.frames,
            stream_s=summary.stream_s,
            wall_s=summary.wall_s,
            detect_fps=config.detect.fps,
            alerts=summary.alerts,
            events_path=summary.events_path,
            video_path=summary.video_path,
            recorder=recorder,
            ground_truth_path=args.gt,
        )
    )


def _zones(args: argparse.Namespace) -> int:
    import webbrowser

    from detector.operator.zone_editor import ZoneEditor, make_server

    editor = ZoneEditor(args.config, args.camera, args.source)
    server = make_server(editor, args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    print(f"zone editor for camera {args.camera} of {args.config}: {url}  (Ctrl-C to stop)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("zone editor stopped")
    finally:
        server.server_close()
    return 0


def _explain(args: argparse.Namespace) -> int:
    from datetime import UTC

    from detector.config import load_config
    from detector.operator.explain import explain

    config = load_config(args.config)
    camera = _camera(config, args.camera)
    cache = args.cache or config.storage_dir / "cache"
    origin = args.start_at or datetime.now(UTC)
    lines, how = explain(
        config, camera, args.zone, violation=args.violation, from_s=args.from_s, to_s=args.to_s,
        source=args.source, cache_dir=cache, origin=origin,
    )
    print(f"camera {camera.id}, {args.from_s:g}-{args.to_s:g} s of stream, from {redact_url(how)}")
    print("\n".join(lines))
    return 0


def _tune(args: argparse.Namespace) -> int:
    from detector.config import load_config
    from detector.operator import sweep

    config = load_config(args.config)
    camera = _camera(config, args.camera)
    sweeps = sweep.parse_sets(args.sets)
    clips = sweep.resolve_clips(camera, args.gt, args.source)
    cache = args.cache or config.storage_dir / "cache"
    result = sweep.sweep(
        config, camera.id, sweeps, clips, cache_dir=cache, origin=args.start_at or sweep.FIXED_ORIGIN, tolerance_s=args.tolerance
    )
    print(f"camera {camera.id}: {len(result.rows)} combinations x {len(clips)} clip{'s' if len(clips) != 1 else ''} ({', '.join(c.name for c in clips)})")
    print(sweep.format_table(result))
    model = f"model pass {result.model_s:.1f} s ({result.built} clip{'s' if result.built != 1 else ''})" if result.built else "detections from the cache"
    print(f"{model}; {result.frames} frames; rules-only replays {result.rules_s:.2f} s for {len(result.rows)} combinations", file=sys.stderr)
    return 0
