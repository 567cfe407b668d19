"""Rendering console pages for htmx: the whole page, or only the fragment htmx asked for.

A page is one template; its fragments are ``{% partialdef name inline %}`` blocks inside it, rendered
alone as ``"template.html#name"`` when htmx asks. Forms that fail validation come back as their own
fragment with status 422 (swapped in place: see ``htmx-config`` in base.html), or, without JavaScript,
on a page of their own.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django_htmx.http import HttpResponseClientRedirect
from django_htmx.middleware import HtmxDetails

FORM_PAGE = "console/form_page.html"


class HtmxHttpRequest(HttpRequest):
    """What ``django_htmx.middleware.HtmxMiddleware`` adds to every request, for the type checker."""

    htmx: HtmxDetails


def wants_fragment(request: HtmxHttpRequest) -> bool:
    # A history-restore request wants the whole page even though htmx sent it.
    return bool(request.htmx) and not request.htmx.history_restore_request


def render_page(request: HtmxHttpRequest, template: str, fragment: str, context: dict[str, Any]) -> HttpResponse:
    """A list page, or only its ``fragment`` when htmx refreshes it (after a filter change, a page turn)."""
    name = f"{template}#{fragment}" if wants_fragment(request) else template
    response = render(request, name, context)
    # The same URL answers two shapes: caches must keep them apart.
    patch_vary_headers(response, ("HX-Request",))
    return response


def render_live(request: HttpRequest, template: str, context: dict[str, Any]) -> HttpResponse:
    """A fragment polled by htmx (a badge, a live panel): never served from a cache."""
    response = render(request, template, context)
    add_never_cache_headers(response)
    return response


def render_form(
    request: HtmxHttpRequest, template: str, fragment: str, context: dict[str, Any], *, title: str, status: int = 200
) -> HttpResponse:
    """A form fragment for htmx; without JavaScript, the same fragment on a page of its own."""
    name = f"{template}#{fragment}"
    if request.htmx:
        return render(request, name, context, status=status)
    return render(request, FORM_PAGE, {**context, "fragment": name, "title": title}, status=status)


def go(request: HtmxHttpRequest, url: str) -> HttpResponse:
    """After a change: a full navigation, whether htmx made the request or a plain form did."""
    return HttpResponseClientRedirect(url) if request.htmx else HttpResponseRedirect(url)


def back(request: HttpRequest, default: str) -> str:
    """Where a form asked to return to (its ``next`` field), when that is on this site; else ``default``."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, require_https=request.is_secure()):
        return target
    return default
