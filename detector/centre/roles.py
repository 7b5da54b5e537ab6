"""Roles are Django groups (admin, dispatcher, officer, viewer); what each may see and do."""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet

from detector.centre.config import ROLES


def role_of(user) -> str | None:
    """A superuser is an admin; otherwise the first of ROLES the user's groups hold."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "admin"
    names = {g.name for g in user.groups.all()}
    return next((r for r in ROLES if r in names), None)


def unit_of(user):
    profile = getattr(user, "centre_profile", None)
    return profile.unit if profile else None


def visible_cases(user, cases: QuerySet) -> QuerySet:
    """An officer sees only his unit's cases (none without a unit); the other roles see all."""
    role = role_of(user)
    if role is None:
        return cases.none()
    if role == "officer":
        unit = unit_of(user)
        return cases.filter(unit=unit) if unit else cases.none()
    return cases


def requires(*roles: str):
    """View decorator: 403 for a logged-in user without one of `roles` (login itself is the
    middleware's)."""

    def wrap(view):
        @wraps(view)
        def checked(request, *args, **kwargs):
            if role_of(request.user) not in roles:
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return checked

    return wrap


def context(request) -> dict:
    """Template context: the user's role and unit."""
    return {"role": role_of(request.user), "unit": unit_of(request.user) if request.user.is_authenticated else None}
