"""Zone polygons for the case page, from the edge configs listed in the centre's `edge_configs`
(alerts carry the zone's id, not its shape)."""

import logging
from functools import cache

from django.conf import settings

from detector.config.load import load_config
from detector.errors import ConfigError

log = logging.getLogger("detector.centre")


@cache
def _polygons() -> dict[tuple[str, str, str], list[list[float]]]:
    shapes = {}
    for path in settings.CENTRE.edge_configs:
        try:
            config = load_config(path)
        except ConfigError as exc:
            log.warning("edge config %s: zones not drawn: %s", path, str(exc).splitlines()[0])
            continue
        for camera in config.cameras:
            for zone in camera.zones:
                shapes[(config.site, camera.id, zone.id)] = [list(p) for p in zone.polygon]
    return shapes


def polygon(site: str, camera: str, zone: str) -> list[list[float]] | None:
    """Normalised [[x, y], ...] of the zone, or None when no edge config names it."""
    return _polygons().get((site, camera, zone))
