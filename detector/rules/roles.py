"""Roles: which model classes play which part in the violation rules.

A rule asks for roles ("a stationary `vehicle`"), never for class names, so one rule serves a
COCO model (its fallbacks below) and a model trained on the city's own classes (mapped in the
config's `roles` section). Each violation type declares the roles it reads
(detector/rules/violations.py); the config's `roles` section is generated from them.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

STATIC_OBJECT_LABEL = "static_object"  # class of the static-new-object detector's boxes


@dataclass(frozen=True)
class Role:
    """A part objects play in a rule, with the COCO classes that play it by default."""

    name: str
    coco: tuple[str, ...]
    description: str
    static_objects: bool = False  # the static-new-object detector's boxes play it too


@dataclass(frozen=True)
class RoleMap:
    """Class ids per role, resolved once against the model's names (plus `static_object`)."""

    labels: tuple[str, ...]
    members: dict[str, np.ndarray]  # per role, a bool per label: looked up by class id (np.isin costs 20x more)
    unknown: tuple[str, ...]  # configured names the model does not have

    @classmethod
    def build(cls, model_names: Sequence[str], roles: Iterable[Role], classes: Mapping[str, Sequence[str]]) -> "RoleMap":
        """`classes`: the configured class names per role (the config's `roles` section)."""
        labels = (*model_names, STATIC_OBJECT_LABEL)
        index = {name: i for i, name in enumerate(labels)}
        members, unknown = {}, []
        for role in roles:
            names = classes[role.name]
            unknown += [f"roles.{role.name}: {n}" for n in names if n not in index]
            found = [index[n] for n in names if n in index] + ([index[STATIC_OBJECT_LABEL]] if role.static_objects else [])
            members[role.name] = np.isin(np.arange(len(labels)), found)
        return cls(labels=labels, members=members, unknown=tuple(unknown))

    @property
    def static_object_id(self) -> int:
        return len(self.labels) - 1

    def has(self, role: str, class_id: np.ndarray) -> np.ndarray:
        return self.members[role][class_id]

    def has_any(self, roles: Iterable[Role], class_id: np.ndarray) -> np.ndarray:
        mask = np.zeros(len(class_id), bool)
        for role in roles:
            mask |= self.has(role.name, class_id)
        return mask
