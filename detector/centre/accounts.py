"""Users and their roles: a role is a Django group, an officer's unit is on his profile."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

from detector.centre.models import Profile, Unit
from detector.errors import ConfigError


def save_user(username: str, password: str, role: str, unit_name: str | None = None):
    """Create or update `username` with exactly one role; the password must pass Django's
    validators (length 10+, not a common one, not like the user name)."""
    User = get_user_model()
    user = User.objects.filter(username=username).first() or User(username=username)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ConfigError(f"password refused: {' '.join(exc.messages)}") from None
    with transaction.atomic():
        user.set_password(password)
        user.is_staff = user.is_superuser = role == "admin"  # the admin site is the admin's
        user.save()
        user.groups.set([Group.objects.get_or_create(name=role)[0]])
        unit = Unit.objects.get_or_create(name=unit_name)[0] if unit_name else None
        Profile.objects.update_or_create(user=user, defaults={"unit": unit})
    return user
