"""Topic names of one camera (contract: docs/mqtt.md), and what a prefix must be to begin them."""

import unicodedata
from dataclasses import dataclass

ZONE_STATE_SCHEMA = "detector.zone_state/1"
HEALTH_SCHEMA = "detector.health/1"
MAX_TOPIC_BYTES = 65535  # MQTT: a topic name is a UTF-8 string with a two-byte length
ALERT_ID_LENGTH = 36  # a UUID (detector/alerts/ids.py), the last level of .../snapshot/{alert_id}


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


def prefix_problem(prefix: str, id_max_length: int) -> str | None:
    """Why `prefix` cannot begin this detector's topics, or None. Each of these is accepted by
    paho or by the broker's CONNACK and fails later: silently (`$` topics are the broker's:
    mosquitto acknowledges and drops what a client publishes there), or by a disconnect on
    every publish (control characters), or by an error (wildcards, too long). `id_max_length`:
    the longest site, camera and zone id, which make up the rest of the topic."""
    if not prefix:
        return "must not be empty"
    if prefix.startswith("$"):
        return "must not start with $ (brokers keep $ topics such as $SYS for themselves and drop what clients publish there)"
    if "+" in prefix or "#" in prefix:
        return "must not contain the wildcards + or # (they are for subscriptions)"
    if any(_forbidden_in_topics(c) for c in prefix):
        return "must not contain control characters or Unicode non-characters (brokers disconnect a client that sends them)"
    if "" in prefix.split("/"):
        return "must not have an empty level (a leading, trailing or double /)"
    longest = CameraTopics(prefix, "s" * id_max_length, "c" * id_max_length)
    size = max(len(t.encode()) for t in (longest.zone_state("z" * id_max_length), longest.snapshot("a" * ALERT_ID_LENGTH)))
    if size > MAX_TOPIC_BYTES:
        length = len(prefix.encode())
        room = MAX_TOPIC_BYTES - (size - length)
        return f"is {length} bytes in UTF-8; an MQTT topic has at most {MAX_TOPIC_BYTES}, which leaves {room} for the prefix"
    return None


def _forbidden_in_topics(char: str) -> bool:
    """Control characters (NUL included), lone surrogates and the non-characters U+FDD0..U+FDEF and
    U+xFFFE/U+xFFFF: MQTT says a topic should not hold them, and mosquitto drops the client."""
    code = ord(char)
    noncharacter = 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE
    return unicodedata.category(char) in ("Cc", "Cs") or noncharacter
