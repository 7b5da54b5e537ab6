"""A read-only Open311 GeoReport v2 view of the violation cases, for the city's existing
systems: /open311/v2/services.json, requests.json (service_request_id, service_code,
start_date, end_date, status) and requests/{id}.json. Every call needs `api_key=` (one of
`open311.api_keys`); without configured keys the view does not exist."""

import hmac
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET

from detector.centre.lifecycle import OPEN_STATES, State
from detector.centre.models import Case
from detector.rules.violations import RULES

MAX_RESULTS = 1000  # GeoReport v2: "may be limited to 1000"
DEFAULT_DAYS = 90  # GeoReport v2: "the last 90 days" when no date is given
NOTES = {State.REJECTED.value: "false alarm", State.SELF_RESOLVED.value: "resolved before an officer was sent"}


def _keyed(view):
    @login_not_required
    @require_GET
    def checked(request, *args, **kwargs):
        keys = [k.get_secret_value() for k in settings.CENTRE.open311.api_keys]
        if not keys:
            raise Http404
        given = request.GET.get("api_key", "")
        if not any(hmac.compare_digest(given.encode(), key.encode()) for key in keys):
            return _error(403, "a valid api_key is required")
        return view(request, *args, **kwargs)

    checked.__name__ = view.__name__
    return checked


@_keyed
def services(request):
    return JsonResponse(
        [
            {
                "service_code": code,
                "service_name": code.replace("_", " "),
                "description": rule.summary,
                "metadata": False,
                "type": "realtime",
                "keywords": "camera",
                "group": "street",
            }
            for code, rule in sorted(RULES.items())
        ],
        safe=False,
    )


@_keyed
def requests(request):
    cases = Case.objects.filter(kind=Case.VIOLATION).select_related("camera").order_by("-opened_at")
    query = request.GET
    if query.get("service_request_id"):
        ids = [i for i in query["service_request_id"].split(",") if i.strip().isdigit()]
        return _answer(cases.filter(pk__in=ids)[:MAX_RESULTS])
    if query.get("service_code"):
        cases = cases.filter(type__in=query["service_code"].split(","))
    start, end = _date(query.get("start_date")), _date(query.get("end_date"))
    if (query.get("start_date") and start is None) or (query.get("end_date") and end is None):
        return _error(400, "start_date and end_date must be W3C date-times (2026-11-28T00:00:00Z)")
    if start is None and end is None:
        start = timezone.now() - timedelta(days=DEFAULT_DAYS)
    if start is not None:
        cases = cases.filter(opened_at__gte=start)
    if end is not None:
        cases = cases.filter(opened_at__lte=end)
    status = query.get("status")
    if status == "open":
        cases = cases.filter(state__in=OPEN_STATES)
    elif status == "closed":
        cases = cases.exclude(state__in=OPEN_STATES)
    elif status:
        return _error(400, "status must be open or closed")
    return _answer(cases[:MAX_RESULTS])


@_keyed
def request(request, pk: int):
    return _answer(Case.objects.filter(kind=Case.VIOLATION, pk=pk).select_related("camera"))


def _answer(cases) -> JsonResponse:
    return JsonResponse([_service_request(c) for c in cases], safe=False)


def _service_request(case: Case) -> dict:
    place = settings.CENTRE.cameras.get(f"{case.camera.site}/{case.camera.camera}")
    last = case.transitions.order_by("-at", "-id").first()
    return {
        "service_request_id": str(case.pk),
        "status": "open" if case.state in OPEN_STATES else "closed",
        "status_notes": NOTES.get(case.state, last.note if last else ""),
        "service_name": case.type.replace("_", " "),
        "service_code": case.type,
        "description": f"{case.type.replace('_', ' ')} in zone {case.zone} of camera {case.camera.site}/{case.camera.camera}",
        "agency_responsible": settings.CENTRE.open311.agency,
        "service_notice": "",
        "requested_datetime": case.opened_at.isoformat(),
        "updated_datetime": case.updated_at.isoformat(),
        "expected_datetime": case.due_at.isoformat() if case.due_at else None,
        "address": place.address if place else None,
        "address_id": None,
        "zipcode": None,
        "lat": place.lat if place else None,
        "long": place.long if place else None,
        "media_url": None,  # evidence is behind the centre's login
    }


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else timezone.make_aware(moment)


def _error(code: int, description: str) -> JsonResponse:
    return JsonResponse([{"code": code, "description": description}], status=code, safe=False)
