"""Helpers shared by the command modules."""

from detector.errors import ConfigError


def camera_of(config, camera_id: str):
    """The config's camera, or ConfigError naming the ones there are."""
    try:
        return config.camera(camera_id)
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
