"""The chain of custody of one decision or change: a picture from the human to the action, the links with
their status then and now, the decision's context and request path, and a timeline of what led to it and
what followed. Admins and auditors only; nothing on it changes anything."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from audit import bundles
from console.pages import HtmxHttpRequest
from console.roles import ADMIN, AUDITOR, role_required
from custody.api import DIGEST
from custody.custody import custody_of
from custody.records import Custody, Status

NODE_W, NODE_H, GAP, TOP = 200, 64, 84, 34


@dataclass(frozen=True, slots=True)
class Node:
    x: int
    kind: str  # human | agent | action
    title: str
    subtitle: str
    status: Status | None
    url: str
    css: str

    @property
    def cx(self) -> int:
        return self.x + NODE_W // 2


@dataclass(frozen=True, slots=True)
class Edge:
    x1: int
    x2: int
    label: str
    sublabel: str
    status: Status | None
    url: str

    @property
    def mid(self) -> int:
        return (self.x1 + self.x2) // 2


@dataclass(frozen=True, slots=True)
class Picture:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int
    node_w: int = NODE_W
    node_h: int = NODE_H
    top: int = TOP

    @property
    def mid_y(self) -> int:
        return self.top + self.node_h // 2


def _status_css(status: Status | None) -> str:
    if status is None:
        return ""
    if status.then != "active":
        return "bad"
    return "changed" if status.now != "active" else "ok"


def picture(custody: Custody) -> Picture:
    """The chain as a row of boxes, the human on the left, the action on the right; each arrow a
    delegation link labelled with its number and status."""
    nodes: list[Node] = []
    edges: list[Edge] = []
    x = 0

    def add(kind: str, title: str, subtitle: str, status: Status | None, url: str, css: str = "") -> None:
        nonlocal x
        if nodes:
            edges.append(Edge(x - GAP, x, "", "", None, ""))
        nodes.append(Node(x, kind, title, subtitle, status, url, css or _status_css(status)))
        x += NODE_W + GAP

    if custody.human is not None:
        add(
            "human",
            custody.human.label,
            "human",
            custody.human.status,
            reverse("console:human", args=[custody.human.id]),
        )
    for hop in custody.hops:
        token = "no token recorded"
        if hop.token is not None:
            token = f"token {hop.token.ref[:8]}…"
            if hop.token.status.then != "active":
                token += f" {hop.token.status.then}"
        # A hop whose token no longer held then is as broken as one whose agent was not active.
        token_css = "bad" if hop.token is not None and hop.token.status.then != "active" else ""
        add("agent", hop.agent.label, token, hop.agent.status, reverse("console:agent", args=[hop.agent.id]), token_css)
        # The arrow into this agent is its delegation link.
        if len(nodes) > 1:
            edges[-1] = Edge(
                edges[-1].x1,
                edges[-1].x2,
                f"#{hop.delegation_id}",
                hop.status.then if not hop.status.changed else f"{hop.status.then} → {hop.status.now}",
                hop.status,
                reverse("console:delegation", args=[hop.delegation_id]),
            )
    if not custody.hops and custody.actor is not None:
        add(
            "agent",
            custody.actor.label,
            "own key",
            custody.actor.status,
            reverse("console:agent", args=[custody.actor.id]),
        )
    event, context = custody.event, custody.context
    if custody.is_decision:
        allowed = context.get("decision") == "allow"
        add(
            "action",
            str(context.get("scope", event.target_label)),
            "allowed" if allowed else f"denied: {context.get('reason', '')}",
            None,
            "",
            "allow" if allowed else "deny",
        )
    else:
        add("action", event.action, event.target_label or event.target_id, None, "", "event")
    return Picture(nodes, edges, width=max(x - GAP, NODE_W), height=TOP + NODE_H + 40)


@login_required
@role_required(ADMIN, AUDITOR)
def custody(request: HtmxHttpRequest, digest: str) -> HttpResponse:
    if not DIGEST.match(digest):
        raise Http404("An event id is 64 hexadecimal characters.")
    found = custody_of(digest)
    if found is None:
        raise Http404("No audit event has this id.")
    context = {
        "custody": found,
        "picture": picture(found),
        "bundle_limit": bundles.MAX_EVENTS,
    }
    return render(request, "custody/custody.html", context)


@login_required
@role_required(ADMIN, AUDITOR)
def custody_bundle(request: HtmxHttpRequest, digest: str) -> HttpResponse:
    """The evidence bundle of a chain of custody: the subject and every event on its timeline, with the
    seals linking them to a signed checkpoint; the standalone verifier checks it offline."""
    if not DIGEST.match(digest):
        raise Http404("An event id is 64 hexadecimal characters.")
    found = custody_of(digest)
    if found is None:
        raise Http404("No audit event has this id.")
    selection = bundles.Selection(digests=tuple(m.event.digest for m in found.timeline))
    try:
        bundle = bundles.export_bundle(selection)
    except (bundles.NothingSelected, bundles.SelectionTooLarge, TimeoutError, RuntimeError) as exc:
        messages.error(request, f"No bundle yet: {exc}.")
        return redirect("console:custody", digest)
    response = HttpResponse(json.dumps(bundle, ensure_ascii=False, indent=1), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="custody-{digest[:16]}.json"'
    add_never_cache_headers(response)
    return response
