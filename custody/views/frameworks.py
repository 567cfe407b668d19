"""The framework mapping page and its JSON download: each OWASP NHI, OWASP Agentic and NIST CSF PR.AA item
with the Custos control that addresses it and live evidence from this installation. Admins and auditors."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from console.pages import HtmxHttpRequest
from console.roles import ADMIN, AUDITOR, role_required
from custody import frameworks as fw


@login_required
@role_required(ADMIN, AUDITOR)
def frameworks(request: HtmxHttpRequest) -> HttpResponse:
    figures = fw.figures(timezone.now())
    return render(request, "custody/frameworks.html", {"sections": fw.mapping(figures), "figures": figures})


@login_required
@role_required(ADMIN, AUDITOR)
def frameworks_json(request: HtmxHttpRequest) -> HttpResponse:
    """The mapping with its evidence as a file for auditors' working papers, stamped with its time."""
    figures = fw.figures(timezone.now())
    body = fw.as_json(fw.mapping(figures), figures, request.build_absolute_uri)
    response = HttpResponse(
        json.dumps(body, indent=2, ensure_ascii=False), content_type="application/json; charset=utf-8"
    )
    stamp = figures.now.strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="custos-framework-mapping-{stamp}.json"'
    return response
