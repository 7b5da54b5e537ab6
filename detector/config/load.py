"""Read a YAML config: `${VAR}` substitution, validation, errors that name the key path.

`read_yaml` is the one YAML reader (configs and ground-truth files). It is bounded, so that a
hostile or broken file is refused in well under a second with one line naming the cause, instead
of hanging `check`/`replay`/`run` or a supervisor's reload:

- size: a file over MAX_BYTES is refused before parsing;
- aliases: the values a document stands for once its aliases are expanded are counted while it
  is composed (each node once, with its expanded size remembered), so a "billion laughs" of a
  few lines is refused instead of being walked 10^9 times; an alias inside its own anchor (a
  recursive structure) is refused too;
- depth: nesting (aliases expanded) deeper than MAX_DEPTH is refused before Python's recursion
  limit is reached anywhere downstream;
- duplicate keys: an error naming both lines (YAML requires unique keys; PyYAML would let the
  last one win silently).
"""

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from detector.config.schema import AppConfig
from detector.errors import ConfigError, redact_url

MAX_BYTES = 1 << 20  # a site of 64 cameras with 20 zones each is about 0.3 MiB of YAML
MAX_VALUES = 50_000  # scalars, lists and mappings, aliases expanded; that site has 38,000
MAX_DEPTH = 32  # a config nests 8 levels: top, cameras, a camera, zones, a zone, polygon, a point, x

_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def load_config(path: str | Path, text: str | None = None, schema: type[BaseModel] = AppConfig) -> Any:
    """Load, substitute and validate against `schema` (the edge's AppConfig, or the centre's);
    raises ConfigError listing every problem, one per line. `text`: the file's content already
    read (read_text), so that what was validated is exactly what a caller keeps."""
    raw = read_yaml(path) if text is None else parse_yaml(text, str(path))
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    errors: list[str] = []
    substituted = _substitute_env(raw, (), errors, raw)
    if errors:
        raise ConfigError(_report(path, errors))
    try:
        return schema.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(_report(path, [_describe(e, raw) for e in exc.errors()])) from None


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file within the bounds above; ConfigError names the file and what is wrong."""
    return parse_yaml(read_text(path, what), str(path))


def read_text(path: str | Path, what: str = "config") -> str:
    """A YAML file's text, within the size bound; ConfigError names the file and what is wrong."""
    path = Path(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_BYTES + 1)  # never more: /dev/zero or a FIFO cannot fill the memory
            size = os.fstat(file.fileno()).st_size
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_BYTES:
        found = f"{size / (1 << 20):.1f} MiB" if size > MAX_BYTES else "more than that"
        raise ConfigError(f"{path}: too large for a {what} file: at most {MAX_BYTES >> 20} MiB, this one is {found}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read {what} {path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML text within the bounds above; ConfigError is one line starting with `name`."""
    try:
        loader = _BoundedLoader(text)  # its reader already refuses control characters
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        raise ConfigError(f"{name}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {_one_line(exc)}") from None


class _Refused(yaml.YAMLError):
    """A document past a bound, or with a duplicate key: the message is the whole story."""


if yaml.__with_libyaml__:  # PyYAML's wheels bundle libyaml
    from yaml.composer import Composer
    from yaml.constructor import SafeConstructor
    from yaml.cyaml import CParser
    from yaml.resolver import Resolver

    class _SafeLoader(Composer, CParser, SafeConstructor, Resolver):
        """libyaml's event parser under PyYAML's own composer, which _BoundedLoader hooks: about
        6x faster than the pure-Python parser of yaml.SafeLoader (CSafeLoader composes in C,
        where no check can reach)."""

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

else:
    _SafeLoader = yaml.SafeLoader


class _BoundedLoader(_SafeLoader):
    """A safe loader (no Python objects) that checks every node as it is composed.

    PyYAML has no such limits of its own; hooking `compose_node` keeps them in one place and
    refuses a hostile document before anything walks its expanded tree.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._composed = 0  # nodes composed so far: bounds the work on a flat file before any node completes
        self._expanded: dict[int, tuple[int, int]] = {}  # id(node) -> (values, height), aliases expanded

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if self._depth >= MAX_DEPTH:
            raise _Refused(f"line {line}: nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        expanded = self._expanded.get(id(node))
        if expanded is None:
            if isinstance(event, yaml.AliasEvent):  # its anchor is still being composed: it contains itself
                raise _Refused(f"line {line}: alias *{event.anchor} is inside its own anchor (a recursive structure)")
            self._composed += 1
            if self._composed > MAX_VALUES:
                raise _Refused(f"line {line}: more than {MAX_VALUES} values")
            children = [self._expanded[id(child)] for child in _children(node)]
            expanded = (1 + sum(v for v, _ in children), 1 + max((h for _, h in children), default=0))
            self._expanded[id(node)] = expanded
            if isinstance(node, MappingNode):
                _require_unique_keys(node)
        values, height = expanded
        if values > MAX_VALUES:
            raise _Refused(f"line {line}: more than {MAX_VALUES} values once YAML aliases (*name) are expanded")
        if self._depth + height > MAX_DEPTH:
            raise _Refused(f"line {line}: nested deeper than {MAX_DEPTH} levels once YAML aliases (*name) are expanded")
        return node

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # SafeConstructor lets ValueError, KeyError, IndexError... escape for a scalar its tag
        # cannot read (`2024-13-45` is a timestamp by its pattern, `!!bool maybe`, `!!int ''`).
        try:
            return super().construct_object(node, deep)
        except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
            what = _shown(node.value) if isinstance(node, ScalarNode) else "this value"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {what} as {node.tag.rsplit(':', 1)[-1]} ({exc})", node.start_mark
            ) from None


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return node.value
    if isinstance(node, MappingNode):
        return [child for pair in node.value for child in pair]
    return []


def _require_unique_keys(node: MappingNode) -> None:
    """Scalar keys compare as written with their resolved tag (`1` and `"1"` are different keys)."""
    first: dict[tuple[str, str], yaml.Mark] = {}
    for key, _ in node.value:
        if not isinstance(key, ScalarNode):
            continue  # a list or mapping as a key: the constructor refuses it (unhashable)
        mark = first.setdefault((key.tag, key.value), key.start_mark)
        if mark is not key.start_mark:
            a, b = mark.line + 1, key.start_mark.line + 1
            where = (
                f"line {a} and line {b}" if a != b else f"line {a} (columns {mark.column + 1} and {key.start_mark.column + 1})"
            )
            raise _Refused(f"duplicate key {key.value!r} at {where}: a key may appear once per mapping")


def _one_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message (with a snippet of the file) as one line with line/column."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        context = ""
        if exc.context and exc.context_mark is not None:
            context = f" ({exc.context} at line {exc.context_mark.line + 1})"
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}{context}"
    if isinstance(exc, yaml.reader.ReaderError):
        return f"character {exc.position + 1}: #x{exc.character:04x} is not allowed ({exc.reason})"
    return " ".join(str(exc).split())


def config_digest(config: AppConfig) -> str:
    """sha256 of the validated config, to stamp alerts with. Secrets excluded (the MQTT password,
    the user:password of source URLs): alerts publish the digest, and a digest of a config one
    can guess, password included, would let anyone test guesses of that password offline."""
    cameras = tuple(c.model_copy(update={"source": redact_url(c.source)}) for c in config.cameras)
    text = config.model_copy(update={"cameras": cameras}).model_dump_json(exclude={"mqtt": {"password"}})
    return hashlib.sha256(text.encode()).hexdigest()


def check_files(config: AppConfig, cameras: list[str] | None = None) -> None:
    """Files the config names must exist (run after validation; no I/O in validators).

    `cameras` limits the source check to those camera ids (a replay of one camera does not
    need the others' clips); None checks them all."""
    missing = []
    if not config.model.path.is_file():
        missing.append(f"model.path: {config.model.path}: {_not_a_file(config.model.path)}")
    if config.model.names is not None and not config.model.names.is_file():
        missing.append(f"model.names: {config.model.names}: {_not_a_file(config.model.names)}")
    for camera in config.cameras:
        if cameras is not None and camera.id not in cameras:
            continue
        if camera.is_file and not Path(camera.source).is_file():
            missing.append(f"cameras.{camera.id}.source: {camera.source}: {_not_a_file(Path(camera.source))}")
    if config.mqtt is not None and config.mqtt.tls is not None:
        for key in ("ca", "cert", "key"):
            value = getattr(config.mqtt.tls, key)
            if value is not None and not value.is_file():
                missing.append(f"mqtt.tls.{key}: {value}: {_not_a_file(value)}")
    if missing:
        raise ConfigError("\n".join(missing))


def _not_a_file(path: Path) -> str:
    return "is a directory, not a file" if path.is_dir() else "file not found"


def _substitute_env(node: Any, path: tuple, errors: list[str], root: dict) -> Any:
    if isinstance(node, dict):
        return {k: _substitute_env(v, (*path, k), errors, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_env(v, (*path, i), errors, root) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match) -> str:
        value = os.environ.get(match["name"], match["default"])
        if value is None:
            errors.append(f"{_dotted(path, root)}: environment variable {match['name']} is not set")
            return ""
        return value

    return _ENV_REFERENCE.sub(replace, node)


def _describe(error: dict, raw: dict) -> str:
    location = _dotted(error["loc"], raw)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{location}: unknown key"
    if error["type"] == "missing":
        return f"{location}: required key is missing"
    value = error.get("input")
    if isinstance(value, (dict, list)) or value is None or "password" in location:
        return f"{location}: {message}"
    return f"{location}: {_shown(value)}: {message}"


def _shown(value: Any, limit: int = 80) -> str:
    """The value as an error line quotes it: credentials hidden first (a cut URL could lose the
    `@` that ends them), then cut to `limit` characters."""
    text = redact_url(repr(value))
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _dotted(loc: tuple, raw: dict | None) -> str:
    """('cameras', 0, 'zones', 1, 'polygon') -> 'cameras.cam-01.zones.gate.polygon'.

    List items that carry an `id` are named by it (stable while the file is edited);
    others by their index, `polygon[3]`.
    """
    text = ""
    node: Any = raw
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                text += f".{item['id']}"
            else:
                text += f"[{part}]"
            node = item
        else:
            text += f".{part}" if text else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return text or "(top level)"


def _report(path: str | Path, problems: list[str]) -> str:
    head = f"invalid config {path}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"
    return "\n".join([head, *(f"  {p}" for p in problems)])
