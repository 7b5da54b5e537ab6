"""Topic names of one camera (contract: docs/mqtt.md)."""

from dataclasses import dataclass

ZONE_STATE_SCHEMA = "detector.zone_state/1"
HEALTH_SCHEMA = "detector.health/1"


@dataclass(frozen=True)
class CameraTopics:
    prefix: str
    site: str
    camera: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.camera}"

    @property
    def alert(self) -> str:
        return f"{self.base}/alert"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    def zone_state(self, zone: str) -> str:
        return f"{self.base}/zone/{zone}/state"

    def snapshot(self, alert_id: str) -> str:
        return f"{self.base}/snapshot/{alert_id}"


def parse(topic: str, prefix: str) -> tuple[str, str, str, tuple[str, ...]] | None:
    """`{prefix}/{site}/{camera}/rest...` -> (site, camera, kind, rest); None if not ours."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) < 3:
        return None
    site, camera, kind, *rest = parts
    return site, camera, kind, tuple(rest)
