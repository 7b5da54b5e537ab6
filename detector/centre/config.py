"""The centre's YAML config (docs/centre.md): read like the edge's (`${VAR}` from the environment,
unknown keys are errors naming their path), validated by its own schema."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from detector.config.load import load_config
from detector.config.schema import BrokerHost, Identifier, Strict, TlsConfig, TopicPrefix

ROLES = ("admin", "dispatcher", "officer", "viewer")


class CentreMqttConfig(Strict):
    host: BrokerHost = Field(description="Broker host name or IP address")
    port: int = Field(1883, ge=1, le=65535, description="Broker port")
    topic_prefix: TopicPrefix = Field("detector", description="The edge boxes' mqtt.topic_prefix")
    username: str | None = Field(None, description="Broker user (none = anonymous)")
    password: SecretStr | None = Field(None, description="Broker password; write ${CENTRE_MQTT_PASSWORD}")
    tls: TlsConfig | None = Field(None, description="Connect over TLS (absent = plain TCP)")
    keepalive_s: int = Field(30, ge=5, le=65535, description="MQTT keepalive")
    client_id: Identifier = Field(
        "detector-centre-1", description="Fixed client id: the broker keeps this instance's session (one id per instance)"
    )
    share_group: Identifier | None = Field(
        "centre",
        description="Subscribe through $share/{group}/...: instances of one group share the messages (null: every "
        "instance gets every message)",
    )
    session_expiry_s: int = Field(
        7 * 24 * 3600, ge=0, description="How long the broker keeps this instance's session and queued alerts while it is away"
    )
    max_payload_bytes: int = Field(65536, ge=1024, description="Larger alert, status or health payloads are rejected")
    max_snapshot_bytes: int = Field(4 << 20, ge=1024, description="Larger snapshot JPEGs are rejected")


class DatabaseConfig(Strict):
    engine: Literal["sqlite", "postgresql"] = Field("sqlite", description="sqlite (one machine, the demo) or postgresql")
    path: Path = Field(Path("out/centre/centre.sqlite3"), description="SQLite file")
    host: str = Field("localhost", description="PostgreSQL host (or a socket directory)")
    port: int = Field(5432, ge=1, le=65535, description="PostgreSQL port")
    name: str = Field("detector", description="PostgreSQL database")
    user: str = Field("detector", description="PostgreSQL user")
    password: SecretStr | None = Field(None, description="PostgreSQL password; write ${CENTRE_DB_PASSWORD}")


class WebConfig(Strict):
    host: str = Field("127.0.0.1", description="Address the web pages listen on")
    port: int = Field(8080, ge=0, le=65535, description="Port of the web pages (0: any free port, printed at start)")
    threads: int = Field(8, ge=1, le=256, description="Web server threads")
    secret_key: SecretStr | None = Field(
        None,
        description="Signs sessions and CSRF tokens; write ${CENTRE_SECRET_KEY} (absent: one is made and kept in storage_dir)",
    )
    secure_cookies: bool = Field(False, description="Send cookies over HTTPS only (set it behind a TLS proxy)")
    allowed_hosts: list[str] = Field(["127.0.0.1", "localhost"], description="Host names the pages answer to")


class CasesConfig(Strict):
    dispatch_due_s: int = Field(3600, ge=60, description="Default time an officer has to handle a dispatched case")
    join_iou: float = Field(
        0.3, ge=0, le=1, description="An alert joins an open case of its camera, zone and type when its box overlaps this much"
    )


class FleetConfig(Strict):
    dark_after_s: int = Field(
        900, ge=10, description="A camera with no frame (or no health) for this long is flagged and gets a maintenance case"
    )
    moved_after_s: int = Field(900, ge=10, description="A camera whose view is moved or blocked this long: the same")
    check_interval_s: float = Field(10.0, gt=0, description="How often the fleet is checked")


class CameraPlace(Strict):
    """Where a camera is, for Open311 (lat/long, address) and the case page (zone polygons)."""

    lat: float | None = Field(None, ge=-90, le=90, description="Latitude, WGS84 (Open311 lat)")
    long: float | None = Field(None, ge=-180, le=180, description="Longitude, WGS84 (Open311 long)")
    address: str | None = Field(None, max_length=200, description="Street address (Open311 address)")


class Open311Config(Strict):
    api_keys: list[SecretStr] = Field([], description="Keys that may read /open311/v2/ (none: the view is off)")
    jurisdiction_id: str = Field("detector.local", description="The jurisdiction these cases belong to")
    agency: str = Field("Street office", description="agency_responsible of every request")


class CentreConfig(Strict):
    storage_dir: Path = Field(Path("out/centre"), description="Evidence JPEGs, officers' photos, the generated secret key")
    timezone: str = Field("UTC", description="Days of the figures and times on the pages")
    mqtt: CentreMqttConfig = Field(description="The broker the edge boxes publish to")
    database: DatabaseConfig = Field(DatabaseConfig(), description="Where cases are kept: SQLite (one machine) or PostgreSQL")
    web: WebConfig = Field(WebConfig(), description="The web pages")
    cases: CasesConfig = Field(CasesConfig(), description="How alerts become cases")
    fleet: FleetConfig = Field(FleetConfig(), description="When a camera is flagged and gets a maintenance case")
    open311: Open311Config = Field(Open311Config(), description="The read-only Open311 GeoReport v2 view")
    edge_configs: list[Path] = Field([], description="The edge boxes' configs: their zone polygons are drawn on the case page")
    cameras: dict[str, CameraPlace] = Field(
        {}, description="Place of each camera, keyed '{site}/{camera}' (Open311 lat, long and address)"
    )


def load_centre_config(path: str | Path) -> CentreConfig:
    return load_config(path, schema=CentreConfig)
