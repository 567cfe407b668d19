"""A generated organisation in which every kind of reference crosses a reviewer's line: sub-agents under
parents another line sponsors, delegations whose delegate or root human lies outside, agents that made
links and keys for sub-agents someone else sponsors, cross-line access requests, and decisions whose
detail names a hidden human.

Every text a person could read of an object (names, purposes, emails, justifications, intents…) carries
a unique token ``zq`` + 8 hex digits, and each model's ids start in a range of their own (2 000 001 for
the first governed model, 3 000 001 for the next…), so "no name and no id of a hidden object appears" is
a plain substring check on any response, HTML or JSON.
"""

from __future__ import annotations

import itertools
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.contrib.auth.models import Group, User
from django.db import connection
from django.db.models import Model
from django.utils import timezone

from audit.models import ActorKind, AuditEvent
from audit.services import Actor
from console import roles
from console.errors import DomainError
from governance import oauth, runtime, services
from governance.authn import AgentPrincipal
from governance.models import Agent, Delegation, Human, HumanStatus, Resource
from governance.usage import usage
from reviews import services as reviews
from reviews.models import CampaignKind

SYSTEM = Actor.system("visibility-org")
TOKEN = re.compile(r"zq[0-9a-f]{8}")
ID_BASE = 1_000_000
# An id no model uses, below every range.
NONEXISTENT_ID = 999_001


def tok(what: str) -> str:
    return f"{what}-zq{secrets.token_hex(4)}"


def governed_models() -> list[type[Model]]:
    """Every model whose rows a console user sees through ``objects.visible_to(user)``."""
    return [m for m in apps.get_models() if hasattr(m._default_manager, "visible_to")]


def spread_ids() -> dict[str, int]:
    """Start each governed model's ids in a range of its own; returns the sequences' previous values,
    for ``restore_ids``."""
    previous: dict[str, int] = {}
    with connection.cursor() as cursor:
        for n, model in enumerate(governed_models(), start=2):
            table = model._meta.db_table
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            (sequence,) = cursor.fetchone()
            cursor.execute(f"SELECT last_value FROM {sequence}")
            previous[sequence] = cursor.fetchone()[0]
            cursor.execute("SELECT setval(%s, %s, false)", [sequence, n * ID_BASE + 1])
    return previous


def restore_ids(previous: dict[str, int]) -> None:
    with connection.cursor() as cursor:
        for sequence, value in previous.items():
            cursor.execute("SELECT setval(%s, %s)", [sequence, max(value, 1)])


def user(username: str, *held: str) -> User:
    # No password: tests log in with force_login, and hashing one costs more than the whole org.
    created = User.objects.create(username=username)
    for role in held:
        created.groups.add(Group.objects.get(name=role))
    return created


def human(what: str, *, manager: Human | None = None, linked: User | None = None) -> Human:
    name = tok(what)
    return services.human_create(
        actor=SYSTEM,
        email=f"{name}@example.test",
        name=name,
        department=tok("dept"),
        title=tok("title"),
        manager=manager,
        external_id=tok("ext"),
        user=linked,
    )


def agent(what: str, *, sponsor: Human | None = None, parent: Agent | None = None) -> Agent:
    return services.agent_create(actor=SYSTEM, name=tok(what), purpose=tok("purpose"), sponsor=sponsor, parent=parent)


def grant(holder: Human | Agent, resource: Resource, action: str) -> None:
    expires = timezone.now() + timedelta(days=20) if isinstance(holder, Agent) else None
    services.grant_create(
        actor=SYSTEM, holder=holder, resource=resource, action=action, expires_at=expires, justification=tok("why")
    )


def root_link(root: Human, delegate: Agent, scopes: list[str], *, max_depth: int = 1, days: int = 10) -> Delegation:
    return services.delegation_create(
        actor=SYSTEM,
        root_human=root,
        delegate=delegate,
        scopes=scopes,
        expires_at=timezone.now() + timedelta(days=days),
        purpose=tok("purpose"),
        max_depth=max_depth,
    )


def principal(of: Agent, *, via: Delegation | None = None) -> AgentPrincipal:
    """The agent as it calls the API: with a token for ``via``, or with its key."""
    expires = timezone.now() + timedelta(days=5)
    if via is None:
        return AgentPrincipal(agent=of, via="key", expires_at=expires)
    return AgentPrincipal(agent=of, via="token", expires_at=expires, delegation_id=via.pk, scopes=via.scope_set)


def child_link_by(parent_agent: Agent, parent: Delegation, delegate: Agent, scopes: list[str]) -> Delegation:
    """A link the parent's delegate makes itself, over the API: its ``created_by`` is that agent's name."""
    return services.delegation_create_by_agent(
        principal=principal(parent_agent, via=parent),
        parent_id=parent.pk,
        delegate_id=delegate.pk,
        scopes=scopes,
        expires_at=parent.expires_at - timedelta(hours=1),
        purpose=tok("purpose"),
    )


def key(of: Agent, *, by: Agent | None = None, days: int = 20) -> str:
    expires = timezone.now() + timedelta(days=days)
    if by is None:
        _key, secret = services.agentkey_create(actor=SYSTEM, agent=of, name=tok("key"), expires_at=expires)
    else:
        _key, secret = services.agentkey_create_by_agent(
            principal=principal(by), agent=of, name=tok("key"), expires_at=expires
        )
    return secret


def token(agent_key: str, link: Delegation) -> str:
    issued = oauth.token_exchange(
        actor_token=agent_key,
        actor_token_type=oauth.TOKEN_TYPE_AGENT_KEY,
        subject_token=str(link.pk),
        subject_token_type=oauth.TOKEN_TYPE_DELEGATION,
    )
    return issued.access_token


def check(credential: str, scope: str) -> None:
    resource, _, action = scope.partition(":")
    runtime.check(
        credential=credential,
        action=action,
        resource=resource,
        context={"intent": tok("intent"), "tool": "crm", "session_id": tok("session")},
    )


def ask(requester: Agent, scope: str, under: Delegation | None = None) -> Any:
    return services.access_request_create(
        actor=SYSTEM,
        agent=requester,
        scope=scope,
        justification=tok("justification"),
        intent=tok("intent"),
        session_id=tok("session"),
        delegation=under,
    )


@dataclass
class Org:
    users: dict[str, User]
    # The objects by the role they play here, for the tests that name one.
    named: dict[str, Any] = field(default_factory=dict)


def build() -> Org:
    """Two reviewers' lines under one boss, and a line nobody reviews (``x``), crossed every way.

    Drift needs two out-of-scope denials (the tests set ``CUSTOS_DRIFT_THRESHOLD`` to 2).
    """
    users = {
        "admin": user("vis-admin", roles.ADMIN),
        "auditor": user("vis-auditor", roles.AUDITOR),
        "reviewer": user("vis-reviewer", roles.REVIEWER),
        "reviewer2": user("vis-reviewer2", roles.REVIEWER),
        "outsider": user("vis-outsider"),
    }
    boss = human("boss")  # each reviewer's own manager: outside both their views
    m1 = human("reviewer-one", manager=boss, linked=users["reviewer"])
    r1a = human("report-of-one", manager=m1)
    m2 = human("reviewer-two", manager=boss, linked=users["reviewer2"])
    r2a = human("report-of-two", manager=m2)
    x = human("nobody-reviews")
    y = human("soon-suspended")

    crm = services.resource_create(
        actor=SYSTEM, name="crm.contacts", actions=["read", "write"], owner=x, description=tok("desc")
    )
    ledger = services.resource_create(
        actor=SYSTEM, name="ledger.entries", actions=["read", "write"], owner=m1, description=tok("desc")
    )
    mail = services.resource_create(
        actor=SYSTEM, name="mail.outbox", actions=["read", "write"], owner=m2, description=tok("desc")
    )
    for holder, resource, actions in [
        (x, crm, ("read", "write")),
        (m1, ledger, ("read", "write")),
        (m1, crm, ("read",)),
        (r1a, ledger, ("read", "write")),
        (m2, mail, ("read", "write")),
        (m2, crm, ("read",)),
        (y, crm, ("read",)),
    ]:
        for action in actions:
            grant(holder, resource, action)

    # Sub-agents under a parent another line sponsors, both ways.
    xp = agent("hidden-parent", sponsor=x)
    s1 = agent("sub-of-hidden-for-one", parent=xp, sponsor=r1a)
    s2 = agent("sub-of-hidden-for-two", parent=xp, sponsor=m2)
    a1 = agent("top-of-one", sponsor=m1)
    a1s = services.agent_create_by_agent(principal=principal(a1), name=tok("made-by-top-of-one"), purpose=tok("p"))
    a1h = agent("sub-of-one-for-two", parent=a1, sponsor=m2)
    b1 = agent("top-of-two", sponsor=r2a)
    b1x = agent("sub-of-two-for-nobody", parent=b1, sponsor=x)
    ya = agent("acts-for-suspended", sponsor=r1a)
    for holder in (a1, s1, b1):
        grant(holder, crm, "read")

    # Delegations: made by agents for sub-agents of another line, rooted across lines.
    dx = root_link(x, xp, [crm.scope("read"), crm.scope("write")], max_depth=2)
    dx1 = child_link_by(xp, dx, s1, [crm.scope("read")])
    dx2 = services.delegation_create(
        actor=SYSTEM,
        parent=dx,
        delegate=s2,
        scopes=[crm.scope("read")],
        expires_at=dx.expires_at - timedelta(hours=2),
        purpose=tok("purpose"),
    )
    d1 = root_link(m1, a1, [ledger.scope("read"), crm.scope("read")], max_depth=1)
    d1h = child_link_by(a1, d1, a1h, [ledger.scope("read")])
    d1s = child_link_by(a1, d1, a1s, [crm.scope("read")])
    dm2 = root_link(m2, a1, [mail.scope("read")], max_depth=0)
    dr1 = root_link(r1a, b1, [ledger.scope("read")], max_depth=1)
    dr1x = child_link_by(b1, dr1, b1x, [ledger.scope("read")])
    dy = root_link(y, ya, [crm.scope("read")], max_depth=0)

    # Keys, some issued by a parent agent to a sub-agent another line sponsors.
    keys = {a: key(a) for a in (xp, a1, a1h, b1, b1x, ya, s2)}
    keys[s1] = key(s1, by=xp)
    key(a1s, by=a1, days=3)  # expires within the week: counted on the overview
    key(a1h, by=a1)

    # Tokens and decisions: acting for a human the acting agent's reviewer cannot see.
    check(token(keys[s1], dx1), crm.scope("read"))
    check(token(keys[a1], dm2), mail.scope("read"))
    check(token(keys[a1], d1), ledger.scope("read"))
    check(token(keys[s2], dx2), crm.scope("read"))
    check(token(keys[b1x], dr1x), ledger.scope("read"))
    ya_token = token(keys[ya], dy)
    services.human_set_status(actor=SYSTEM, human=y, status=HumanStatus.SUSPENDED)
    check(ya_token, crm.scope("read"))  # denied: the detail names the suspended human
    for credential in (keys[s1], keys[s1], keys[b1x], keys[b1x]):
        check(credential, mail.scope("write"))  # out of scope twice each: drift

    # Access requests across lines, one of them approved.
    ask(a1, mail.scope("write"), under=dm2)  # to reviewer two, for reviewer one's agent
    ask(s2, crm.scope("write"), under=dx2)  # to nobody-reviews, for reviewer two's agent
    approved = ask(b1, ledger.scope("write"), under=dr1)
    services.access_request_approve(actor=Actor.user(users["admin"]), user=users["admin"], request=approved)
    ask(ya, crm.scope("write"))  # by its key: to its sponsor
    # Pending for reviewer two, by reviewer one's agent, which was suspended since: approving it fails,
    # and the refusal must not name the agent to reviewer two.
    c1 = agent("suspended-asker-of-one", sponsor=m1)
    ask(c1, mail.scope("write"), under=root_link(m2, c1, [mail.scope("read")], max_depth=0))
    services.agent_suspend(actor=SYSTEM, agent=c1)
    # Reviews across lines: each reviewer is asked about agents of their line, reviewer two also (as the
    # fallback) about one whose sponsor nobody reviews; what separation of duties excludes from both is left
    # for an admin. The micro-reviews open items for the drift above.
    review = reviews.campaign_create(
        actor=SYSTEM,
        name=tok("campaign"),
        description=tok("campaign-purpose"),
        subjects=["agent", "grant", "delegation", "key"],
        reviewer_rule="sponsor_manager",
        fallback_reviewer=m2,
    )
    reviews.campaign_launch(actor=SYSTEM, campaign=review)
    reviews.campaign_generate(campaign_id=review.pk)
    micro = reviews.standing_campaign(CampaignKind.MICRO)
    reviews.campaign_update(actor=SYSTEM, campaign=micro, fallback_reviewer=m2)
    reviews.micro_reviews_open()
    # Usage ("last activity") is written in batches, from whichever request comes 30 s later: write it
    # now, or a later answer could change for no reason the test made.
    usage.flush()

    named = {
        "boss": boss,
        "m1": m1,
        "r1a": r1a,
        "m2": m2,
        "r2a": r2a,
        "x": x,
        "y": y,
        "xp": xp,
        "s1": s1,
        "s2": s2,
        "a1": a1,
        "a1s": a1s,
        "a1h": a1h,
        "b1": b1,
        "b1x": b1x,
        "ya": ya,
        "dx": dx,
        "dx1": dx1,
        "dx2": dx2,
        "d1": d1,
        "d1h": d1h,
        "d1s": d1s,
        "dm2": dm2,
        "dr1": dr1,
        "dr1x": dr1x,
        "dy": dy,
        "crm": crm,
    }
    return Org(users=users, named=named)


# --- What each viewer may see ------------------------------------------------------------------


def _texts(obj: Model, *, own: bool = False) -> str:
    """The object's text. ``own``: only what it says of itself, without the attributions it keeps as
    text (``created_by``, ``granted_by``…: the label of whoever did it, perhaps another object's name)."""
    values = []
    for f in obj._meta.concrete_fields:
        value = f.value_from_object(obj)
        if own and f.name.endswith("_by"):
            continue
        if value is not None and not isinstance(value, (int, float, bool)):
            values.append(str(value))
    return " ".join(values)


@dataclass(frozen=True)
class Hidden:
    """What one viewer may not see: the tokens and ids of the objects outside their ``visible_to``
    (less any token some object they do see also carries)."""

    tokens: frozenset[str]
    ids: frozenset[int]
    ids_by_model: dict[type[Model], frozenset[int]]
    visible_ids: frozenset[int]
    # Hidden objects some visible object points at (a parent, a delegate, a root human, an approver…):
    # those a filter, a search or a page marker could be used to probe for. By model.
    adjacent: dict[type[Model], tuple[Model, ...]]
    # What a token or an id belongs to, for the failure message.
    owners: dict[str | int, str]

    def describe(self, what: str | int) -> str:
        return f"{what} ({self.owners.get(what, '?')})"


def hidden_from(viewer: User) -> Hidden:
    hidden_tokens: set[str] = set()
    visible_tokens: set[str] = set()
    owners: dict[str | int, str] = {}
    ids_by_model: dict[type[Model], frozenset[int]] = {}
    visible_ids: set[int] = set()
    visible_objects: list[Model] = []
    for model in governed_models():
        seen = set(model._default_manager.visible_to(viewer).values_list("pk", flat=True))
        visible_ids |= seen
        hidden = set()
        for obj in model._default_manager.all():
            found = TOKEN.findall(_texts(obj))
            # A token a visible object carries is the viewer's to read; but a visible link's created_by
            # naming a hidden agent does not make that agent's name readable.
            (visible_tokens if obj.pk in seen else hidden_tokens).update(
                TOKEN.findall(_texts(obj, own=True)) if obj.pk in seen else found
            )
            if obj.pk in seen:
                visible_objects.append(obj)
            else:
                hidden.add(obj.pk)
                owners[obj.pk] = f"hidden {model.__name__} #{obj.pk}"
                for token in found:
                    owners.setdefault(token, f"text of hidden {model.__name__} #{obj.pk}")
        ids_by_model[model] = frozenset(hidden)
    # Runtime decisions live in the audit log, read through the agent that made them: the intents and
    # sessions of a hidden agent's decisions are as hidden as the agent.
    hidden_agents = {str(pk) for pk in ids_by_model[Agent]}
    for event in AuditEvent.objects.filter(actor_kind=ActorKind.AGENT, action__startswith="check."):
        if event.actor_id in hidden_agents:
            found = TOKEN.findall(str(event.context))
            hidden_tokens.update(found)
            for token in found:
                owners.setdefault(token, f"a decision of hidden agent #{event.actor_id}")
        else:
            # What the agent said of its own work; the outcome's detail names others on the chain.
            own = [str(event.context.get(name, "")) for name in ("intent", "session_id", "tool")]
            visible_tokens.update(TOKEN.findall(" ".join(own)))
    hidden_ids = set(itertools.chain.from_iterable(ids_by_model.values()))
    adjacent: dict[type[Model], dict[int, Model]] = {}
    for obj in visible_objects:
        for f in obj._meta.concrete_fields:
            target = getattr(obj, f.attname) if f.is_relation else None
            if target in hidden_ids and f.related_model in ids_by_model:
                adjacent.setdefault(f.related_model, {})[target] = getattr(obj, f.name)  # type: ignore[index]
    return Hidden(
        tokens=frozenset(hidden_tokens - visible_tokens),
        ids=frozenset(itertools.chain.from_iterable(ids_by_model.values())),
        ids_by_model=ids_by_model,
        visible_ids=frozenset(visible_ids),
        adjacent={model: tuple(by_id[k] for k in sorted(by_id)) for model, by_id in adjacent.items()},
        owners=owners,
    )


def perturb(viewer: User) -> int:
    """Add objects outside ``viewer``'s view next to everything they see: a line of their own (a human,
    agents, links, keys, tokens, decisions, drift, a request), a hidden sub-agent under every active
    agent they see, a hidden link below every link they see whose root is hidden, grants on every
    resource. What the viewer is shown must not change. Returns how many objects were added."""
    added = 0
    z = human("perturbation")
    for resource in Resource.objects.all():
        for action in resource.actions:
            grant(z, resource, action)
            added += 1
    under: dict[int, Agent] = {}
    for seen in Agent.objects.visible_to(viewer).active().order_by("id"):
        try:
            under[seen.pk] = agent("hidden-under-visible", parent=seen, sponsor=z)
        except DomainError:
            continue  # too deep for another level
        key(under[seen.pk], days=2)
        added += 2
    for link in Delegation.objects.visible_to(viewer).active().exclude(root_human__in=Human.objects.visible_to(viewer)):
        below = under.get(link.delegate_id)
        if below is None or link.max_depth < 1:
            continue
        try:
            services.delegation_create(
                actor=SYSTEM,
                parent=link,
                delegate=below,
                scopes=list(link.scopes),
                expires_at=link.expires_at - timedelta(minutes=5),
                purpose=tok("purpose"),
            )
        except DomainError:
            continue  # e.g. the root human no longer holds the scope
        added += 1
    zt = agent("perturbation-top", sponsor=z)
    crm = Resource.objects.get(name="crm.contacts")
    grant(zt, crm, "read")
    zlink = root_link(z, zt, [crm.scope("read")], max_depth=0)
    zkey = key(zt, days=2)
    check(token(zkey, zlink), crm.scope("read"))
    for _ in range(2):
        check(zkey, "mail.outbox:write")
    ask(zt, "mail.outbox:read", under=zlink)
    ask(zt, "ledger.entries:read")
    usage.flush()
    return added + 8
