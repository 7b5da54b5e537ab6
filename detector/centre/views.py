"""The pages (server-rendered; templates in templates/centre/). Login is required everywhere by
LoginRequiredMiddleware; each view checks the role, and every case lookup goes through
`roles.visible_cases`, so an officer cannot open another unit's case by its number."""

from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Prefetch, Q
from django.http import FileResponse, Http404, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from detector.centre import figures, zones
from detector.centre.config import ROLES
from detector.centre.lifecycle import OPEN_STATES, MoveRefused, State, moves_for
from detector.centre.models import Alert, Camera, Case, Profile, Rejection, Transition, Unit
from detector.centre.roles import requires, role_of, visible_cases
from detector.centre.store import move

EVERYONE = ROLES
DESK = ("admin", "dispatcher", "viewer")
MAX_PHOTO_BYTES = 10 << 20


@require_GET
def home(request):
    return redirect("officer" if role_of(request.user) == "officer" else "cases")


# --- the dispatcher's live list -------------------------------------------------------------------


def _filtered(request):
    cases = visible_cases(request.user, Case.objects.select_related("camera", "unit"))
    chosen = {key: request.GET.get(key, "") for key in ("type", "zone", "camera", "state")}
    if chosen["type"]:
        cases = cases.filter(type=chosen["type"])
    if chosen["zone"]:
        cases = cases.filter(zone=chosen["zone"])
    if chosen["camera"]:
        site, _, camera = chosen["camera"].partition("/")
        cases = cases.filter(camera__site=site, camera__camera=camera)
    if chosen["state"] == "open":
        cases = cases.filter(state__in=OPEN_STATES)
    elif chosen["state"]:
        cases = cases.filter(state=chosen["state"])
    return cases.order_by("-opened_at")[:200], chosen


@requires(*DESK)
@require_GET
def case_list(request):
    cases, chosen = _filtered(request)
    every = Case.objects.all()
    return render(
        request,
        "centre/cases.html",
        {
            "cases": cases,
            "chosen": chosen,
            "types": every.order_by("type").values_list("type", flat=True).distinct(),
            "zones": every.exclude(zone="").order_by("zone").values_list("zone", flat=True).distinct(),
            "cameras": Camera.objects.order_by("site", "camera"),
            "states": [s.value for s in State],
        },
    )


@requires(*DESK)
@require_GET
def case_rows(request):
    """The list's rows alone: the page fetches them every few seconds (new cases without reload)."""
    cases, _ = _filtered(request)
    return render(request, "centre/case_rows.html", {"cases": cases})


# --- one case -------------------------------------------------------------------------------------


def _case(request, pk: int) -> Case:
    return get_object_or_404(visible_cases(request.user, Case.objects.select_related("camera", "unit", "officer")), pk=pk)


@requires(*EVERYONE)
@require_GET
def case_page(request, pk: int):
    case = _case(request, pk)
    alerts = list(case.alerts.prefetch_related("events").order_by("id"))
    role = role_of(request.user)
    evidence = next((a for a in alerts if a.evidence == "ok"), None)
    return render(
        request,
        "centre/case.html",
        {
            "case": case,
            "alerts": alerts,
            "evidence": evidence,
            **_overlay(zones.polygon(case.camera.site, case.camera.camera, case.zone), evidence),  # the start's boxes
            "transitions": case.transitions.select_related("by", "unit").order_by("at", "id"),
            "moves": [m.value for m in moves_for(case.state, role)],
            "units": Unit.objects.order_by("name"),
            "officers": Profile.objects.filter(unit__isnull=False, user__groups__name="officer").select_related("user", "unit"),
            "due_default": timezone.localtime(timezone.now() + timedelta(seconds=settings.CENTRE.cases.dispatch_due_s)),
            "template_base": "centre/phone.html" if role == "officer" else "centre/base.html",
        },
    )


def _overlay(polygon: list[list[float]] | None, evidence: Alert | None) -> dict:
    """The zone and the alert's boxes over the snapshot, in the image's normalised coordinates."""
    start = evidence.events.filter(event="start").first() if evidence else None
    boxes = [o["box"] for o in start.payload["objects"]] if start else []
    return {
        "zone_points": " ".join(f"{x:.4f},{y:.4f}" for x, y in polygon) if polygon else "",
        "rects": [{"x": f"{x1:.4f}", "y": f"{y1:.4f}", "w": f"{x2 - x1:.4f}", "h": f"{y2 - y1:.4f}"} for x1, y1, x2, y2 in boxes],
    }


@requires("admin", "dispatcher", "officer")
@require_POST
def case_move(request, pk: int):
    case = _case(request, pk)
    # the officer's page posts from its list and goes back there; only that one place is allowed
    done = redirect("officer") if request.POST.get("back") == "officer" else redirect("case", pk=pk)
    try:
        target = State(request.POST.get("to", ""))
    except ValueError:
        return HttpResponseBadRequest("unknown state")
    unit, officer, due_at, photo = None, None, None, ""
    if target is State.DISPATCHED:
        unit = Unit.objects.filter(pk=request.POST.get("unit") or 0).first()
        officer = (
            Profile.objects.filter(user_id=request.POST.get("officer") or 0, unit__isnull=False)
            .select_related("user", "unit")
            .first()
        )
        if officer is not None:
            unit, officer = officer.unit, officer.user  # an officer is sent with his unit
        if unit is None:
            messages.error(request, "choose a unit to dispatch to")
            return done
        due_at = _due(request.POST.get("due", ""))
    if request.FILES.get("photo"):
        photo, problem = _save_photo(request.FILES["photo"], case)
        if problem:
            messages.error(request, problem)
            return done
    note = request.POST.get("note", "")[:4000]
    try:
        move(
            case,
            target,
            by=request.user,
            role=role_of(request.user),
            note=note,
            photo=photo,
            unit=unit,
            officer=officer,
            due_at=due_at,
        )
    except MoveRefused as exc:
        messages.error(request, str(exc))
    return done


def _due(text: str) -> datetime | None:
    """The dispatch form's local date-time (YYYY-MM-DDTHH:MM), in the centre's time zone."""
    try:
        return timezone.make_aware(datetime.fromisoformat(text)) if text else None
    except ValueError:
        return None


def _save_photo(upload, case: Case) -> tuple[str, str]:
    """(path under storage_dir, problem): JPEG or PNG by content, at most 10 MB."""
    if upload.size > MAX_PHOTO_BYTES:
        return "", "the photo is over 10 MB"
    head = upload.read(8)
    upload.seek(0)
    suffix = ".jpg" if head.startswith(b"\xff\xd8") else ".png" if head.startswith(b"\x89PNG") else None
    if suffix is None:
        return "", "the photo must be a JPEG or PNG"
    folder = Path(settings.CENTRE_STORAGE) / "photos" / str(case.pk)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{timezone.now():%Y%m%dT%H%M%S%f}{suffix}"
    with open(path, "wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return str(path.relative_to(settings.CENTRE_STORAGE)), ""


@requires(*EVERYONE)
@require_GET
def evidence(request, pk: int):
    alert = get_object_or_404(Alert, pk=pk, evidence="ok")
    _case(request, alert.case_id)  # 404 unless the user may see its case
    return _file(alert.snapshot_file, "image/jpeg")


@requires(*EVERYONE)
@require_GET
def photo(request, pk: int):
    transition = get_object_or_404(Transition, pk=pk)
    _case(request, transition.case_id)
    if not transition.photo:
        raise Http404
    return _file(transition.photo, "image/png" if transition.photo.endswith(".png") else "image/jpeg")


def _file(relative: str, content_type: str):
    storage = Path(settings.CENTRE_STORAGE).resolve()
    path = (storage / relative).resolve()
    if not path.is_relative_to(storage) or not path.is_file():
        raise Http404
    return FileResponse(open(path, "rb"), content_type=content_type)


# --- the officer's phone page ---------------------------------------------------------------------


@requires("officer", "admin")
@require_GET
def officer(request):
    cases = (
        visible_cases(request.user, Case.objects.select_related("camera"))
        .filter(state__in=[State.DISPATCHED.value, State.ACCEPTED.value])
        .prefetch_related(Prefetch("alerts", queryset=Alert.objects.filter(evidence="ok"), to_attr="evidence"))
    )
    done = visible_cases(request.user, Case.objects.select_related("camera")).filter(
        state=State.HANDLED.value, handled_at__gte=timezone.now() - timedelta(days=1)
    )
    return render(
        request,
        "centre/officer.html",
        {"cases": cases.order_by("due_at"), "done": done.order_by("-handled_at"), "now": timezone.now()},
    )


# --- the fleet ------------------------------------------------------------------------------------


@requires(*DESK)
@require_GET
def fleet_page(request):
    since = timezone.now() - timedelta(days=1)
    cameras = Camera.objects.order_by("-flag", "site", "camera").annotate(
        maintenance=Count("cases", filter=Q(cases__kind=Case.MAINTENANCE, cases__state__in=OPEN_STATES))
    )
    return render(
        request,
        "centre/fleet.html",
        {
            "cameras": cameras,
            "flagged": sum(1 for c in cameras if c.flag),
            "maintenance": Case.objects.filter(kind=Case.MAINTENANCE, state__in=OPEN_STATES).select_related("camera"),
            "refused": Rejection.objects.filter(at__gte=since).values("reason").annotate(n=Count("id")).order_by("-n")[:20],
            "refused_total": Rejection.objects.filter(at__gte=since).count(),
            "dark_after_s": settings.CENTRE.fleet.dark_after_s,
            "moved_after_s": settings.CENTRE.fleet.moved_after_s,
        },
    )


# --- figures --------------------------------------------------------------------------------------


@requires(*DESK)
@require_GET
def figures_page(request):
    asked = request.GET.get("days", "")
    days = min(int(asked), 366) if asked.isdigit() and int(asked) > 0 else 30
    report = figures.compute(timezone.now() - timedelta(days=days))
    return render(request, "centre/figures.html", {"report": report, "days": days, "plots": figures.plots(report)})
