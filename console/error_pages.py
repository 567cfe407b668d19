"""Django's error handlers (``handler400``… in ``config/urls.py``): JSON ``{code, detail, fields}`` for
URLs under the API's prefixes (``/api/v1/agents/abc/`` matches no API view, and a client there reads
JSON), the console's own pages elsewhere."""

from __future__ import annotations

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views import defaults

# Machine clients live under these paths; a browser never navigates there (the API's docs page aside).
API_PREFIXES = ("/api/", "/oauth/", "/.well-known/", "/scim/")


def is_api_path(path: str) -> bool:
    return path.startswith(API_PREFIXES) and not path.startswith("/api/docs/")


def _json_error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail, "fields": {}}, status=status)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return _json_error(404, "not_found", "No such endpoint or object.")
    return defaults.page_not_found(request, exception or Http404())


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return _json_error(400, "malformed_request", "The request was refused as malformed.")
    if isinstance(exception, BadRequest):
        # Our own refusals (a page link that was not made here) say what to do; their text is ours.
        return render(request, "400.html", {"message": str(exception)}, status=400)
    return defaults.bad_request(request, exception or SuspiciousOperation())


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if is_api_path(request.path):
        return _json_error(403, "forbidden", "You are not allowed to do this.")
    return defaults.permission_denied(request, exception or PermissionDenied())


def server_error(request: HttpRequest) -> HttpResponse:
    if is_api_path(request.path):
        return _json_error(
            500, "server_error", "Something failed on our side. Try again; if it persists, tell your administrator."
        )
    return defaults.server_error(request)
