"""The model loop's data (issue 12): `detector dataset harvest`, `detector feedback`."""

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from detector.cli.common import camera_of, positive_seconds, recorded_clip, whole
from detector.errors import ConfigError, OutputError


def add_commands(commands) -> None:
    dataset = commands.add_parser("dataset", help="training data from the site's cameras (YOLO layout: CVAT, Label Studio)")
    actions = dataset.add_subparsers(required=True, metavar="ACTION")
    harvest = actions.add_parser(
        "harvest", help="frames of a camera, one every S seconds, near-duplicates dropped, pre-labelled by the model"
    )
    harvest.add_argument("config", type=Path)
    harvest.add_argument("--camera", required=True, help="camera id in the config")
    harvest.add_argument("--source", type=recorded_clip, help="a recording to use instead of the camera's source")
    harvest.add_argument("--out", type=Path, required=True, metavar="DS", help="the dataset folder (made, or added to)")
    harvest.add_argument(
        "--every", type=positive_seconds, default=5.0, metavar="S", help="one frame per S s of stream (default: 5)"
    )
    harvest.add_argument(
        "--seconds",
        type=positive_seconds,
        help="stop after S s of stream (default: the whole clip); a live source (rtsp://) needs it: S s of wall time",
    )
    harvest.add_argument(
        "--block-s",
        type=positive_seconds,
        default=60.0,
        metavar="S",
        help="train/val split by blocks of S s of stream (default: 60)",
    )
    harvest.add_argument(
        "--val-every", type=whole(1, 1000, "blocks"), default=5, metavar="N", help="every Nth block goes to val (default: 5)"
    )
    harvest.add_argument(
        "--near",
        type=whole(0, 256, "bits"),
        default=None,
        metavar="BITS",
        help="a frame within BITS of 256 of a kept image's difference hash is a near-duplicate (default: 10)",
    )
    harvest.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal)",
    )
    harvest.set_defaults(command=_harvest)

    feedback = commands.add_parser(
        "feedback",
        help="an operator's mark on an alert (feedback.jsonl beside EVENTS); its frame into a dataset as a hard negative",
    )
    feedback.add_argument("events", type=Path, help="the events.jsonl of a replay or run")
    feedback.add_argument("id", help="the alert's id (or a unique start of it, 8 characters or more)")
    mark = feedback.add_mutually_exclusive_group(required=True)
    mark.add_argument("--false-alarm", action="store_true", help="the alert should not have been raised")
    feedback.add_argument("--note", default="", help="why, in a few words (kept in feedback.jsonl)")
    feedback.add_argument(
        "--dataset", type=Path, metavar="DS", help="also add the alert's frame to this dataset, without the alert's boxes"
    )
    feedback.add_argument("--config", type=Path, help="with --dataset: the config of the replay (its model, zones, camera)")
    feedback.add_argument(
        "--source", type=recorded_clip, help="with --dataset: the recording the alert came from, if not the camera's source"
    )
    feedback.set_defaults(command=_feedback)


def _harvest(args: argparse.Namespace) -> int:
    from detector.config import check_files, load_config
    from detector.dataset.harvest import NEAR_DISTANCE, HarvestSettings, harvest

    config = load_config(args.config)
    camera = camera_of(config, args.camera)
    check_files(config, cameras=[] if args.source else [camera.id])
    if args.source is None and not camera.is_file and args.seconds is None:
        raise ConfigError(f"camera {camera.id}'s source is a live stream: give --seconds (how long to harvest it)")
    _dataset_names(args.out, "--out")
    settings = HarvestSettings(
        args.every, args.block_s, args.val_every, NEAR_DISTANCE if args.near is None else args.near, args.seconds
    )
    show = sys.stderr.isatty() if args.progress is None else args.progress
    with tqdm(unit="s", desc=camera.id, disable=not show, leave=False) as bar:
        try:
            summary = harvest(config, camera, args.out, settings, source=args.source, on_frame=lambda ts: bar.update(ts - bar.n))
        except OSError as exc:  # writing the dataset (read-only, full); the video's are SourceErrors
            raise OutputError(f"--out {args.out}: cannot write there: {exc.strerror or exc}") from None
    print(
        f"{camera.id}: {summary.frames} frames at {config.detect.fps:g} fps, {summary.stream_s:.1f} s of stream; "
        f"{summary.judged} judged (one every {args.every:g} s): {summary.kept} kept, "
        f"{summary.near_duplicates} near-duplicates dropped"
        + (f", {summary.paused} skipped (view paused)" if summary.paused else "")
    )
    for line in summary.lines():
        print(line)
    if (args.out / "data.yaml").exists():
        print(
            f"{args.out}: train {summary.totals['train']}, val {summary.totals['val']} images in all (data.yaml, sources.jsonl)"
        )
    else:
        print(f"{args.out}: not made (no image kept)")
    return 0


def _feedback(args: argparse.Namespace) -> int:
    from detector.dataset import feedback

    if args.dataset is None and (args.config is not None or args.source is not None):
        raise ConfigError("--config and --source go with --dataset")
    if args.dataset is not None and args.config is None:
        raise ConfigError("--dataset needs --config (the replay's config: its model pre-labels the frame)")
    alert = feedback.find_alert(feedback.read_alerts(args.events), args.id, args.events)
    marks_path = feedback.feedback_path(args.events)
    marked = any(m["alert_id"] == alert.id and m.get("mark") == feedback.FALSE_ALARM for m in feedback.read_marks(marks_path))
    negative = _negative(args, alert) if args.dataset is not None else None  # every check before anything is written
    if negative is not None:
        from detector.dataset.yolo import YoloDataset

        dataset = YoloDataset.create(args.dataset)
        if feedback.add_negative(dataset, alert, negative):
            print(
                f"{dataset.root}: added {feedback.negative_stem(alert)}.jpg (train) as a hard negative: "
                f"{len(negative.labels)} boxes of the model kept, {negative.removed} on the alert's objects removed"
            )
        else:
            print(f"{dataset.root}: already holds {feedback.negative_stem(alert)}.jpg; left as it is")
    if marked:
        print(f"alert {alert.id} is already marked {feedback.FALSE_ALARM} in {marks_path}")
    else:
        feedback.append_mark(marks_path, feedback.new_mark(alert, feedback.FALSE_ALARM, args.note))
        print(f"alert {alert.id} ({alert.type}, {alert.camera}/{alert.zone}) marked {feedback.FALSE_ALARM} -> {marks_path}")
    return 0


def _negative(args: argparse.Namespace, alert):
    from detector.config import check_files, load_config
    from detector.dataset import feedback

    config = load_config(args.config)
    camera = camera_of(config, alert.camera)
    check_files(config, cameras=[] if args.source else [camera.id])
    names = _dataset_names(args.dataset, "--dataset")
    snapshot, _ = feedback.snapshot_image(args.events, alert)
    image = feedback.clean_frame(config, camera, alert, snapshot, args.source)
    return feedback.hard_negative(config, alert, image, names, str(args.source or camera.source))


def _dataset_names(root: Path, option: str) -> tuple[str, ...]:
    """The classes of the dataset `root` is or will be, checked before any work is done: a file,
    or a dataset of other classes, is refused."""
    from detector.dataset.yolo import CLASSES, YoloDataset

    if root.exists() and not root.is_dir():
        raise OutputError(f"{option} {root}: is a file, not a folder")
    if not (root / "data.yaml").exists():
        return CLASSES
    names = YoloDataset.open(root).names
    if names != CLASSES:
        raise OutputError(f"{root}: a dataset of other classes ({', '.join(names)}); give another folder")
    return names
