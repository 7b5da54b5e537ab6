"""Configuration: typed models (`schema`), YAML loading with errors by key path (`load`)."""

from detector.config.load import check_files, config_digest, load_config
from detector.config.schema import (
    Anchor,
    AppConfig,
    CameraConfig,
    MqttConfig,
    ViolationSettings,
    ViolationType,
    ZoneConfig,
)

__all__ = [
    "Anchor",
    "AppConfig",
    "CameraConfig",
    "MqttConfig",
    "ViolationSettings",
    "ViolationType",
    "ZoneConfig",
    "check_files",
    "config_digest",
    "load_config",
]
