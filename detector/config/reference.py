"""The config's JSON Schema, and the key references rendered from it: docs/config.md (the edge's
AppConfig) and docs/centre-config.md (the centre's CentreConfig).

Both read only `model_json_schema()`, never the classes, so models built with
`pydantic.create_model` are covered like hand-written ones.
"""

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from detector.config.schema import AppConfig

HEADER = """\
# Configuration keys

Generated from the field descriptions in `detector/config/schema.py` by
`scripts/gen_config_docs.py`; edit those and rerun it (a test fails while this file is stale).
A whole config with comments: `configs/example.yaml`. What the alert timings mean:
[violations.md](violations.md). For editors: `detector check --schema > config.schema.json`, then
`# yaml-language-server: $schema=config.schema.json` as the first line of a config.
"""

Node = dict[str, Any]
_REQUIRED = object()  # a key without a default


CENTRE_HEADER = """\
# Centre configuration keys

The config of `detector centre` ([centre.md](centre.md)). Generated from the field descriptions in
`detector/centre/config.py` by `scripts/gen_config_docs.py`; edit those and rerun it (a test fails
while this file is stale). `${VAR}` takes a value from the environment, as in the edge's config
([config.md](config.md)); write every password and key that way. `configs/centre-demo.yaml` is the demo's.
"""


def json_schema(model: type[BaseModel] = AppConfig, title: str = "detector config") -> Node:
    """JSON Schema (draft 2020-12) of a config file: `detector check --schema`, editors."""
    return {"$schema": GenerateJsonSchema.schema_dialect, **model.model_json_schema(), "title": title}


def render_markdown(model: type[BaseModel] = AppConfig, header: str = HEADER) -> str:
    """The key reference: one table per section (top level, `mqtt.tls`, `cameras[].zones[]`, ...)."""
    schema = json_schema(model)
    defs = schema.get("$defs", {})
    tables = [_table(path, section, defaults, defs) for path, section, defaults in _sections("", schema, {}, defs)]
    return "\n".join([header, *tables])


def _sections(path: str, model: Node, defaults: dict, defs: Node) -> Iterator[tuple[str, Node, dict]]:
    """Depth first, in field order. `defaults` are the values the parent's default gives this
    section (`violations.illegal_parking`); they win over the model's own."""
    yield path, model, defaults
    for key, field in model["properties"].items():
        child = _section_of(field, defs)
        if child is not None:
            default = _default(key, field, defaults)
            yield from _sections(_child_path(path, key, child), child[0], default if isinstance(default, dict) else {}, defs)


def _section_of(field: Node, defs: Node) -> tuple[Node, bool] | None:
    """(model, is_list) when the field is a model, a list of models, or either or null."""
    node = _resolve(field, defs)
    for branch in node.get("anyOf", [node]):
        branch = _resolve(branch, defs)
        items = _resolve(branch.get("items", {}), defs)
        if "properties" in branch:
            return branch, False
        if branch.get("type") == "array" and "properties" in items:
            return items, True
    return None


def _default(key: str, field: Node, defaults: dict) -> Any:
    return defaults.get(key, field.get("default", _REQUIRED))


def _child_path(path: str, key: str, child: tuple[Node, bool]) -> str:
    return (f"{path}.{key}" if path else key) + ("[]" if child[1] else "")


def _table(path: str, model: Node, defaults: dict, defs: Node) -> str:
    title = f"`{path}`" if path else "Top level"
    lines = [f"## {title}", ""]
    if model.get("description"):
        lines += [model["description"], ""]
    lines += ["| key | type | default | description | constraints |", "|---|---|---|---|---|"]
    for key, field in model["properties"].items():
        child = _section_of(field, defs)
        child_path = _child_path(path, key, child) if child else ""
        type_text, constraints = _shape(field, defs, f"[`{child_path}`](#{_anchor(child_path)})")
        value = _default(key, field, defaults)
        if value is _REQUIRED:
            default = "required"
        else:
            default = "see section" if child and isinstance(value, dict) else f"`{_yaml(value)}`"
        cells = [f"`{key}`", type_text, default, field.get("description", ""), "; ".join(constraints)]
        lines.append("| " + " | ".join(cell.replace("|", "\\|").replace("\n", " ") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def _shape(field: Node, defs: Node, link: str) -> tuple[str, list[str]]:
    """Type in words and constraints of a field; a model is written as `link`."""
    node = _resolve(field, defs)
    if "properties" in node:
        return link, []
    if "anyOf" in node:
        shapes = [_shape(branch, defs, link) for branch in node["anyOf"]]
        return " or ".join(text for text, _ in shapes), [c for _, constraints in shapes for c in constraints]
    if "const" in node:
        return f"`{_yaml(node['const'])}`", []
    constraints = _constraints(node)
    if "enum" in node:
        return "string", [f"one of {', '.join(f'`{_yaml(v)}`' for v in node['enum'])}", *constraints]
    if node.get("type") == "array":
        if "prefixItems" in node:  # a fixed-length tuple: its length is in the type
            parts = [_shape(item, defs, link)[0] for item in node["prefixItems"]]
            return f"[{', '.join(parts)}]", []
        text, item_constraints = _shape(node.get("items", {}), defs, link)
        return f"list of {text}", constraints + [f"each {c}" for c in item_constraints]
    kind = {"path": "path", "password": "secret string"}.get(node.get("format"), node.get("type", "any"))
    return kind, constraints


_BOUNDS = {
    "minimum": ">= {}",
    "exclusiveMinimum": "> {}",
    "maximum": "<= {}",
    "exclusiveMaximum": "< {}",
    "minLength": "at least {} characters",
    "maxLength": "at most {} characters",
    "minItems": "at least {} items",
    "maxItems": "at most {} items",
    "pattern": "matches `{}`",
}


def _constraints(node: Node) -> list[str]:
    return [text.format(node[key]) for key, text in _BOUNDS.items() if key in node]


def _resolve(node: Node, defs: Node) -> Node:
    """The definition a `$ref` points to (pydantic only refers into `$defs`)."""
    ref = node.get("$ref")
    return defs[ref.removeprefix("#/$defs/")] if ref else node


def _yaml(value: Any) -> str:
    """A default as it would be written in the YAML file (flow style)."""
    if isinstance(value, list):
        return f"[{', '.join(_yaml(v) for v in value)}]"
    if isinstance(value, dict):
        return f"{{{', '.join(f'{k}: {_yaml(v)}' for k, v in value.items())}}}"
    if isinstance(value, str):
        return value or '""'
    return json.dumps(value)


def _anchor(path: str) -> str:
    """GitHub's heading anchor of the section's heading: `mqtt.tls` -> mqtttls."""
    return re.sub(r"[^\w\- ]", "", path.lower()).replace(" ", "-")
