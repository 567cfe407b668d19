"""Personas and ``make_*`` factories. Everything is built through the services, as the product does,
so a factory can never produce a state the product itself could not."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.utils import timezone

from audit.services import Actor
from governance import services
from governance.models import Agent, AgentKey, Delegation, Grant, Human, Resource

_seq = itertools.count(1)
SYSTEM = Actor.system("tests")


def _n() -> int:
    return next(_seq)


def make_user(*roles: str, username: str | None = None, password: str = "pw-for-tests-only") -> User:
    user = User.objects.create_user(username=username or f"user{_n()}", password=password)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


def make_admin() -> User:
    return make_user("admin", username=f"admin{_n()}")


def make_reviewer() -> User:
    return make_user("reviewer", username=f"reviewer{_n()}")


def make_auditor() -> User:
    return make_user("auditor", username=f"auditor{_n()}")


def make_outsider() -> User:
    return make_user(username=f"outsider{_n()}")


def make_human(**kwargs: Any) -> Human:
    n = _n()
    kwargs.setdefault("email", f"person{n}@example.test")
    kwargs.setdefault("name", f"Person {n}")
    return services.human_create(actor=SYSTEM, **kwargs)


def make_resource(name: str | None = None, actions: tuple[str, ...] = ("read", "write"), **kwargs: Any) -> Resource:
    kwargs.setdefault("owner", make_human())
    return services.resource_create(actor=SYSTEM, name=name or f"res{_n()}.data", actions=actions, **kwargs)


def make_agent(sponsor: Human | None = None, parent: Agent | None = None, **kwargs: Any) -> Agent:
    if sponsor is None and parent is None:
        sponsor = make_human()
    kwargs.setdefault("name", f"agent-{_n()}")
    return services.agent_create(actor=SYSTEM, sponsor=sponsor, parent=parent, **kwargs)


def make_grant(holder: Human | Agent, resource: Resource, action: str = "read", **kwargs: Any) -> Grant:
    if isinstance(holder, Agent):
        kwargs.setdefault("expires_at", timezone.now() + timedelta(days=7))
    return services.grant_create(actor=SYSTEM, holder=holder, resource=resource, action=action, **kwargs)


def make_delegation(
    delegate: Agent,
    scopes: list[str],
    *,
    root_human: Human | None = None,
    parent: Delegation | None = None,
    expires_in: timedelta = timedelta(days=1),
    max_depth: int = 0,
    purpose: str = "test purpose",
) -> Delegation:
    return services.delegation_create(
        actor=SYSTEM,
        delegate=delegate,
        scopes=scopes,
        expires_at=timezone.now() + expires_in,
        purpose=purpose,
        root_human=root_human,
        parent=parent,
        max_depth=max_depth,
    )


def make_key(agent: Agent, **kwargs: Any) -> tuple[AgentKey, str]:
    return services.agentkey_create(actor=SYSTEM, agent=agent, **kwargs)


def make_chain(depth: int = 2, scopes: tuple[str, ...] = ("read",)) -> dict[str, Any]:
    """A human holding ``res:read`` (and write) who delegates to an agent, which delegates down
    ``depth - 1`` levels of sub-agents. Returns the pieces by name."""
    human = make_human()
    resource = make_resource()
    for action in resource.actions:
        make_grant(human, resource, action)
    scope_names = [resource.scope(a) for a in scopes]
    agents = [make_agent(sponsor=human)]
    for _ in range(depth - 1):
        agents.append(make_agent(parent=agents[-1]))
    links = [
        make_delegation(agents[0], scope_names, root_human=human, max_depth=depth - 1, expires_in=timedelta(days=2))
    ]
    for level, agent in enumerate(agents[1:], start=1):
        links.append(
            # Each level a minute shorter than the one above: "now + 1 day" taken later would outlive its parent.
            make_delegation(
                agent,
                scope_names,
                parent=links[-1],
                max_depth=depth - 1 - level,
                expires_in=timedelta(days=1) - timedelta(minutes=level),
            )
        )
    return {"human": human, "resource": resource, "agents": agents, "links": links, "scopes": scope_names}


def make_api_token(user: User) -> str:
    """A personal API token for ``user``; returns the full ``cu_…`` secret for an Authorization header."""
    _token, secret = services.api_token_create(actor=SYSTEM, user=user)
    return secret


def make_token(
    agent_key: str,
    delegation: Delegation | None = None,
    *,
    parent_token: str | None = None,
    scope: str | None = None,
    audience: str | None = None,
) -> str:
    """A delegation token through the RFC 8693 exchange service, with the agent's ``ck_…`` key as the
    actor token: for ``delegation`` (the agent is its delegate) or, for a sub-agent, from its parent
    agent's ``parent_token``. Returns the compact JWT."""
    from governance import oauth

    if (delegation is None) == (parent_token is None):
        raise ValueError("give a delegation or a parent token")
    issued = oauth.token_exchange(
        actor_token=agent_key,
        actor_token_type=oauth.TOKEN_TYPE_AGENT_KEY,
        subject_token=str(delegation.pk) if delegation is not None else str(parent_token),
        subject_token_type=oauth.TOKEN_TYPE_DELEGATION if delegation is not None else oauth.TOKEN_TYPE_JWT,
        scope=scope,
        audience=audience,
    )
    return issued.access_token


def make_chain_tokens(chain: dict[str, Any]) -> dict[str, list[str]]:
    """Keys and tokens for every agent of a ``make_chain`` chain: the first agent exchanges its
    delegation, each sub-agent its parent's token. Returns {"keys": [...], "tokens": [...]}, first agent first."""
    keys = [make_key(agent)[1] for agent in chain["agents"]]
    issued = [make_token(keys[0], chain["links"][0])]
    for key in keys[1:]:
        issued.append(make_token(key, parent_token=issued[-1]))
    return {"keys": keys, "tokens": issued}
