"""Campaign pages: list, create and edit a draft, preview, launch, progress, close, reports. (Being built.)"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def campaigns(request: HttpRequest) -> HttpResponse:
    raise Http404


def campaign_create(request: HttpRequest) -> HttpResponse:
    raise Http404


def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def campaign_launch(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def campaign_close(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def campaign_progress(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def campaign_report(request: HttpRequest, pk: int, fmt: str) -> HttpResponse:
    raise Http404
