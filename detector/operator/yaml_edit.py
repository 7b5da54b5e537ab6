"""Rewrite one camera's zones in a config YAML, keeping the rest of the file as it was.

ruamel.yaml round-trip: comments, key order, flow/block style, quoting, anchors and the file's
indentation survive. Zones are edited in place (an existing zone keeps its node, so its
comments and the keys the editor does not manage, like grace_s or anchor, stay), removed zones
are deleted and new ones appended. A field is only rewritten when its value changed, so an
untouched zone keeps its exact text (`0.50` stays `0.50`).

A zones list shared between cameras through a YAML anchor/alias stays shared: editing it
edits every camera that aliases it (the editor says so on the page).
"""

import difflib
import io
import math

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from detector.config.load import parse_yaml
from detector.errors import ConfigError

DIGITS = 4  # normalised coordinates to 1/10000 of the frame: finer than a pixel of 4K


class ConfigDocument:
    """A YAML config loaded for round-trip editing."""

    def __init__(self, text: str, name: str = "config") -> None:
        self.name = name
        parse_yaml(text, name)  # the bounds and duplicate-key check of `detector check` first: ruamel has no bounds
        try:
            _, sequence_indent, offset = load_yaml_guess_indent(text)
            self.yaml = self._best_yaml(text, sequence_indent or 2, offset or 0)
            self.doc = self.yaml.load(text)
        except YAMLError as exc:
            raise ConfigError(f"{name}: not valid YAML: {exc}") from None
        if not isinstance(self.doc, CommentedMap) or not isinstance(self.doc.get("cameras"), list):
            raise ConfigError(f"{name}: expected a mapping with a `cameras` list")

    @staticmethod
    def _make_yaml(mapping: int, sequence: int, offset: int) -> YAML:
        yaml = YAML()
        yaml.preserve_quotes = True
        yaml.width = 4096  # never re-wrap long lines
        yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
        yaml.representer.add_representer(type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null"))
        return yaml

    @classmethod
    def _best_yaml(cls, text: str, sequence: int, offset: int) -> YAML:
        """The indentation settings whose dump of the unmodified file differs least from it."""
        best, best_diff = None, math.inf
        for mapping in (2, 4, sequence):
            for seq, off in ((sequence, offset), (mapping, 0), (mapping + 2, 2)):
                if off > seq - 2 and off != 0:
                    continue
                yaml = cls._make_yaml(mapping, seq, off)
                out = io.StringIO()
                yaml.dump(yaml.load(text), out)
                if out.getvalue() == text:
                    return yaml
                diff = sum(1 for line in difflib.ndiff(text.splitlines(), out.getvalue().splitlines()) if line[:1] in "+-")
                if diff < best_diff:
                    best, best_diff = yaml, diff
        return best

    def camera_node(self, camera_id: str) -> CommentedMap:
        for camera in self.doc["cameras"]:
            if isinstance(camera, dict) and camera.get("id") == camera_id:
                return camera
        raise ConfigError(f"{self.name}: no camera {camera_id!r}")

    def shared_with(self, camera_id: str) -> list[str]:
        """Other cameras whose `zones` is the same YAML node (an alias of this camera's list)."""
        zones = self.camera_node(camera_id).get("zones")
        if zones is None:
            return []
        return [c.get("id") for c in self.doc["cameras"] if c.get("id") != camera_id and c.get("zones") is zones]

    def set_zones(self, camera_id: str, zones: list[dict]) -> None:
        """zones: [{orig_id?, id, polygon, violations, dwell_s?, schedule?}] in the page's order
        (existing zones first, new ones after)."""
        camera = self.camera_node(camera_id)
        seq = camera.get("zones")
        if seq is None:
            seq = CommentedSeq()
            camera["zones"] = seq
        existing = {node.get("id"): node for node in seq if isinstance(node, dict)}
        kept = {z.get("orig_id") for z in zones if z.get("orig_id") in existing}
        for index in reversed(range(len(seq))):  # deletions first; ruamel shifts item comments
            if isinstance(seq[index], dict) and seq[index].get("id") not in kept:
                del seq[index]
        for zone in zones:
            node = existing.get(zone.get("orig_id")) if zone.get("orig_id") in kept else None
            if node is None:
                node = CommentedMap()
                seq.append(node)
            _update_zone(node, zone)

    def dump(self) -> str:
        out = io.StringIO()
        self.yaml.dump(self.doc, out)
        return out.getvalue()


def _update_zone(node: CommentedMap, zone: dict) -> None:
    polygon = [[round(float(x), DIGITS), round(float(y), DIGITS)] for x, y in zone["polygon"]]
    _set(node, "id", zone["id"])
    if not _same_polygon(node.get("polygon"), polygon):
        node["polygon"] = _flow([_flow(point) for point in polygon])
    violations = list(zone["violations"])
    if list(node.get("violations") or []) != violations:
        node["violations"] = _flow(violations)
    dwell = zone.get("dwell_s")
    if dwell is None:
        node.pop("dwell_s", None)
    else:
        dwell = int(dwell) if float(dwell).is_integer() else float(dwell)
        _set(node, "dwell_s", dwell)
    schedule = list(zone.get("schedule") or [])
    if not schedule:
        node.pop("schedule", None)
    elif list(node.get("schedule") or []) != schedule:
        node["schedule"] = _flow(schedule)


def _set(node: CommentedMap, key: str, value) -> None:
    if key not in node or node[key] != value:
        node[key] = value


def _same_polygon(current, polygon: list[list[float]]) -> bool:
    if not isinstance(current, list) or len(current) != len(polygon):
        return False
    try:
        return all(abs(float(a) - b) < 10**-DIGITS for p, q in zip(current, polygon) for a, b in zip(p, q))
    except (TypeError, ValueError):
        return False


def _flow(items: list) -> CommentedSeq:
    seq = CommentedSeq(items)
    seq.fa.set_flow_style()
    return seq
