"""Which alerts of a camera are open: the one owner of that fact.

In memory for every pipeline; with a path (`detector run`: `{storage_dir}/state/{camera}.json`)
also on disk, replaced atomically after each event, so that the next worker process restores
them (CameraPipeline.restore_open_alerts): an object already alerted is not alerted again under
a new id, and ends under its old id when it has gone.
"""

import json
import logging
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from detector.alerts.alert import Alert, AlertEvent, AlertObject
from detector.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenAlert:
    zone: str
    type: str
    id: str
    seq: int  # of the last event sent
    first_seen_at: str
    objects: tuple[AlertObject, ...]

    @property
    def key(self) -> tuple[str, str]:
        return self.zone, self.type

    def to_json(self) -> dict:
        return {
            "key": f"{self.zone}/{self.type}",
            "zone": self.zone,
            "type": self.type,
            "id": self.id,
            "seq": self.seq,
            "first_seen_at": self.first_seen_at,
            "objects": [o.to_json() for o in self.objects],
        }

    @classmethod
    def from_json(cls, data: dict) -> "OpenAlert":
        objects = tuple(AlertObject(o["label"], o["score"], tuple(o["box"]), o.get("track_id")) for o in data["objects"])
        return cls(data["zone"], data["type"], data["id"], int(data["seq"]), data["first_seen_at"], objects)


class OpenAlerts:
    def __init__(self, path: Path | None = None, storage: Storage | None = None) -> None:
        """`storage`: hears a save that fails, which then waits for the next save (without
        one the OSError goes up)."""
        self.path = None if path is None else Path(path)
        self.storage = storage
        self._open: dict[tuple[str, str], OpenAlert] = {}
        self._dirty = False
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def __len__(self) -> int:
        return len(self._open)

    def get(self, zone: str, violation: str) -> OpenAlert | None:
        return self._open.get((zone, violation))

    def ids(self) -> dict[tuple[str, str], str]:
        """{(zone, type): alert id} of the open alerts."""
        return {key: alert.id for key, alert in self._open.items()}

    def record(self, alert: Alert) -> None:
        """After each event: a start or update keeps it open, an end closes it."""
        if alert.event is AlertEvent.END:
            self._open.pop(alert.key, None)
        else:
            first_seen_at = self._open[alert.key].first_seen_at if alert.key in self._open else alert.first_seen_at
            self._open[alert.key] = OpenAlert(alert.zone, alert.type, alert.id, alert.seq, first_seen_at, alert.objects)
        self._dirty = True

    def reopen(self, alert: OpenAlert) -> None:
        self._open[alert.key] = alert

    def restore(self, accept: Callable[[OpenAlert], bool]) -> list[OpenAlert]:
        """Reopen what an earlier process left open and `accept` takes (the engine resumes it);
        the file is rewritten without the rest. Returns the reopened alerts."""
        kept = [alert for alert in self.saved() if accept(alert)]
        for alert in kept:
            self.reopen(alert)
        self._dirty = True
        self.save()
        return kept

    def saved(self) -> list[OpenAlert]:
        """What an earlier process left open (nothing without a path or a readable file)."""
        if self.path is None:
            return []
        try:
            data = json.loads(self.path.read_text())
            return [OpenAlert.from_json(item) for item in data.get("open", [])]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("%s unreadable (%s): open alerts not restored", self.path, exc)
            return []

    def save(self) -> None:
        """Atomically, when something changed since the last save (a no-op without a path). On a
        full disk the file keeps its last state and the next save tries again (the pipeline saves
        after every frame): a restart meanwhile restores that older state."""
        if self.path is None or not self._dirty:
            return
        partial = self.path.with_suffix(".tmp")
        try:
            with open(partial, "w", encoding="utf-8") as f:
                json.dump({"open": [a.to_json() for a in self._open.values()]}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, self.path)
        except OSError as exc:
            with suppress(OSError):
                partial.unlink(missing_ok=True)
            if self.storage is None or not self.storage.failed("state", self.path, exc):
                raise
            return
        if self.storage is not None:
            self.storage.succeeded("state")
        self._dirty = False
