"""An agent calling API v1 with its own credentials, for the agent-access tests: ``Caller`` (the
``caller`` fixture in ``conftest.py``) and the requests and audit reads those tests share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.test import Client
from rest_framework.test import APIClient

from audit.models import AuditEvent
from governance import oauth
from governance.models import Agent, AgentKey
from tests.api.support import World, in_an_hour

FORM = "application/x-www-form-urlencoded"
KEY, TOKEN = "key", "token"  # how a Caller presents itself: its key or its delegation token


@dataclass
class Caller:
    """``world.agent`` with a key of its own and a token for ``world.delegation`` (read and write,
    one further hop allowed)."""

    agent: Agent
    key: str
    key_record: AgentKey
    token: str

    def client(self, via: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.key if via == KEY else self.token}")
        return client


def bearer(credential: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {credential}")
    return client


def events_since(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=seq).order_by("id"))


def audit_head() -> int:
    last = AuditEvent.objects.order_by("-id").first()
    return last.id if last else 0


def exchange(actor_key: str, subject: str, subject_type: str, **extra: str) -> Any:
    form = {
        "grant_type": oauth.GRANT_TYPE_TOKEN_EXCHANGE,
        "actor_token": actor_key,
        "actor_token_type": oauth.TOKEN_TYPE_AGENT_KEY,
        "subject_token": subject,
        "subject_token_type": subject_type,
        **extra,
    }
    return Client().post("/oauth/token", urlencode(form), content_type=FORM)


def check_scope(credential: str, scope: str) -> dict[str, Any]:
    resource, _, action = scope.partition(":")
    response = bearer(credential).post("/api/v1/check", {"action": action, "resource": resource}, format="json")
    assert response.status_code == 200, response.content
    return dict(response.json())


def sub_delegation(world: World, caller: Caller) -> dict[str, Any]:
    return {
        "parent": world.delegation.pk,
        "delegate": world.sub_agent.pk,
        "scopes": [world.resource.scope("read")],
        "expires_at": in_an_hour(),
        "purpose": "summarise tickets",
    }
