"""The organisation the delegation-rule tests start from (a root human with grants, a sponsor, an agent
tree) and their helpers: creating links through the service, expecting a refusal that wrote nothing,
reading a link's usability. Its fixtures, ``org`` and ``frozen``, are in ``conftest.py`` beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from console.errors import DomainError, ValidationFailed
from governance import services
from governance.chain import delegation_usability
from governance.models import (
    Agent,
    AgentKey,
    Delegation,
    Grant,
    Human,
    Resource,
)
from tests.factories import SYSTEM, make_agent, make_delegation, make_grant, make_human, make_resource

DAY = timedelta(days=1)


def make_org() -> Org:
    """The organisation (``org`` fixture)."""
    human = make_human()
    sponsor = make_human()
    resource = make_resource(actions=("read", "write", "admin"))
    grants = {action: make_grant(human, resource, action) for action in ("read", "write")}
    top = make_agent(sponsor=sponsor)
    sub = make_agent(parent=top)
    return Org(
        human=human,
        sponsor=sponsor,
        resource=resource,
        read=resource.scope("read"),
        write=resource.scope("write"),
        admin_scope=resource.scope("admin"),
        top=top,
        sub=sub,
        subsub=make_agent(parent=sub),
        sibling=make_agent(parent=top),
        other=make_agent(sponsor=sponsor),
        grants=grants,
    )


@dataclass
class Org:
    human: Human  # the root human: holds read and write on the resource
    sponsor: Human  # sponsors the agents; deliberately not the root human
    resource: Resource
    read: str
    write: str
    admin_scope: str  # a scope of the resource nobody holds
    top: Agent  # top-level agent
    sub: Agent  # sub-agent of top
    subsub: Agent  # sub-agent of sub
    sibling: Agent  # another sub-agent of top
    other: Agent  # an unrelated top-level agent
    grants: dict[str, Grant]


def root_of(
    org: Org, *, scopes: list[str] | None = None, max_depth: int = 2, expires_in: timedelta = 2 * DAY
) -> Delegation:
    return make_delegation(
        org.top, scopes or [org.read, org.write], root_human=org.human, max_depth=max_depth, expires_in=expires_in
    )


def child_of(
    parent: Delegation,
    delegate: Agent,
    *,
    scopes: list[str] | None = None,
    max_depth: int = 0,
    expires_in: timedelta | None = None,
) -> Delegation:
    expires_at = parent.expires_at if expires_in is None else timezone.now() + expires_in
    return create(
        delegate=delegate,
        parent=parent,
        scopes=scopes or list(parent.scopes),
        max_depth=max_depth,
        expires_at=expires_at,
    )


def create(**kwargs: Any) -> Delegation:
    kwargs.setdefault("actor", SYSTEM)
    kwargs.setdefault("purpose", "summarise the week's tickets")
    parent = kwargs.get("parent")
    kwargs.setdefault("expires_at", parent.expires_at if parent is not None else timezone.now() + DAY)
    return services.delegation_create(**kwargs)


def refused(code: str, attempt: Callable[[], object], *, error: type[DomainError] = ValidationFailed) -> DomainError:
    """Run ``attempt``, expect ``error`` with ``code``, and check that it wrote nothing at all."""
    counts = (Delegation.objects.count(), Grant.objects.count(), AgentKey.objects.count(), AuditEvent.objects.count())
    with pytest.raises(error) as caught:
        attempt()
    assert caught.value.code == code, f"expected {code}, got {caught.value.code}: {caught.value.detail}"
    after = (Delegation.objects.count(), Grant.objects.count(), AgentKey.objects.count(), AuditEvent.objects.count())
    assert after == counts, "a refused change wrote rows or audit events"
    return caught.value


def usability_reason(link: Delegation, **kwargs: Any) -> str:
    return delegation_usability(link, **kwargs).reason


def fresh(obj: Any) -> Any:
    return type(obj).objects.get(pk=obj.pk)
