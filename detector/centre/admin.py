"""The admin site (`/admin/`, the admin role): units and users' profiles to edit; cases, alerts
and the fleet to look through. Moves of a case go through its page, where they are recorded."""

from django.contrib import admin

from detector.centre.models import Alert, Camera, Case, Profile, Rejection, Transition, Unit


@admin.register(Unit)
class UnitAdmin(admin.ModelAdmin):
    list_display = ("name",)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "unit")


class ReadOnly(admin.ModelAdmin):
    """History is written by ingest and by the case pages, never edited by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Case)
class CaseAdmin(ReadOnly):
    list_display = ("id", "kind", "type", "camera", "zone", "state", "opened_at", "unit", "due_at")
    list_filter = ("kind", "type", "state", "unit")


@admin.register(Alert)
class AlertAdmin(ReadOnly):
    list_display = ("alert_id", "case", "type", "zone", "started_at", "ended_at", "evidence", "false_alarm")
    list_filter = ("type", "evidence", "false_alarm")


@admin.register(Transition)
class TransitionAdmin(ReadOnly):
    list_display = ("case", "from_state", "to_state", "by", "at", "unit")


@admin.register(Camera)
class CameraAdmin(ReadOnly):
    list_display = ("site", "camera", "status", "last_frame_at", "view_state", "flag")
    list_filter = ("site", "status", "flag")


@admin.register(Rejection)
class RejectionAdmin(ReadOnly):
    list_display = ("at", "topic", "reason", "size")
