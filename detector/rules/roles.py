"""Which model classes play which role in the violation rules."""

from dataclasses import dataclass

import numpy as np

from detector.config.schema import RoleClasses

STATIC_OBJECT_LABEL = "static_object"  # class of the static-new-object detector's boxes
ROLES = ("vehicle", "person", "vendor", "vending_item", "garbage")


@dataclass(frozen=True)
class RoleMap:
    """Class ids per role, resolved once against the model's names (plus `static_object`)."""

    labels: tuple[str, ...]
    ids: dict[str, np.ndarray]
    unknown: tuple[str, ...]  # configured names the model does not have

    @classmethod
    def build(cls, model_names: list[str], roles: RoleClasses) -> "RoleMap":
        labels = (*model_names, STATIC_OBJECT_LABEL)
        index = {name: i for i, name in enumerate(labels)}
        ids, unknown = {}, []
        for role in ROLES:
            names = getattr(roles, role)
            unknown += [f"roles.{role}: {n}" for n in names if n not in index]
            ids[role] = np.array([index[n] for n in names if n in index], np.int32)
        ids["garbage"] = np.append(ids["garbage"], index[STATIC_OBJECT_LABEL]).astype(np.int32)
        return cls(labels=labels, ids=ids, unknown=tuple(unknown))

    @property
    def static_object_id(self) -> int:
        return len(self.labels) - 1

    def has(self, role: str, class_id: np.ndarray) -> np.ndarray:
        return np.isin(class_id, self.ids[role])
