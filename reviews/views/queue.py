"""The review queue: the page reviewers live in. (Being built.)"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse


def queue(request: HttpRequest) -> HttpResponse:
    raise Http404


def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def item_decide(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def item_reassign(request: HttpRequest, pk: int) -> HttpResponse:
    raise Http404


def certify_bulk(request: HttpRequest) -> HttpResponse:
    raise Http404


def notifications(request: HttpRequest) -> HttpResponse:
    raise Http404


def notifications_badge(request: HttpRequest) -> HttpResponse:
    raise Http404
