"""Read a YAML config: `${VAR}` substitution, validation, errors that name the key path."""

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from detector.config.schema import AppConfig
from detector.errors import ConfigError, redact_url

_ENV_REFERENCE = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")


def load_config(path: str | Path) -> AppConfig:
    """Load, substitute and validate; raises ConfigError listing every problem, one per line."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
    errors: list[str] = []
    substituted = _substitute_env(raw, (), errors, raw)
    if errors:
        raise ConfigError(_report(path, errors))
    try:
        return AppConfig.model_validate(substituted)
    except ValidationError as exc:
        raise ConfigError(_report(path, [_describe(e, raw) for e in exc.errors()])) from None


def read_yaml(path: str | Path, what: str = "config") -> Any:
    """Parse a YAML file; ConfigError names the file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def config_digest(config: AppConfig) -> str:
    """sha256 of the validated config (secrets excluded), to stamp alerts with."""
    text = config.model_dump_json(exclude={"mqtt": {"password"}})
    return hashlib.sha256(text.encode()).hexdigest()


def check_files(config: AppConfig, cameras: list[str] | None = None) -> None:
    """Files the config names must exist (run after validation; no I/O in validators).

    `cameras` limits the source check to those camera ids (a replay of one camera does not
    need the others' clips); None checks them all."""
    missing = []
    if not config.model.path.is_file():
        missing.append(f"model.path: {config.model.path}: file not found")
    if config.model.names is not None and not config.model.names.is_file():
        missing.append(f"model.names: {config.model.names}: file not found")
    for camera in config.cameras:
        if cameras is not None and camera.id not in cameras:
            continue
        if camera.is_file and not Path(camera.source).is_file():
            missing.append(f"cameras.{camera.id}.source: {camera.source}: file not found")
    if config.mqtt is not None and config.mqtt.tls is not None:
        for key in ("ca", "cert", "key"):
            value = getattr(config.mqtt.tls, key)
            if value is not None and not value.is_file():
                missing.append(f"mqtt.tls.{key}: {value}: file not found")
    if missing:
        raise ConfigError("\n".join(missing))


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
    return f"{location}: {redact_url(repr(value))}: {message}"


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
