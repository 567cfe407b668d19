from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from governance.roles import role_required


@login_required
@role_required()
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "governance/home.html", {})
