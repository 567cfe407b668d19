"""The framework mapping: OWASP Top 10 Non-Human Identities Risks (2025), the identity items of the OWASP
Top 10 for Agentic Applications, and NIST CSF 2.0 PR.AA-01…05. For each item, what Custos does about it
and live evidence from this installation, each figure linked to the list behind it.

The mapping is data (``ITEMS``: id, title, control, evidence function), so it is tested item by item. All
the figures come from ``figures()``: a fixed handful of aggregate queries, whatever the installation's size.
Admins and auditors only (the page reads everything), so nothing here is scoped by viewer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q
from django.db.models.fields.json import KT
from django.urls import reverse

from audit.models import ActorKind, AuditEvent
from custody.overview import TimeToRevoke, humanise_ms, time_to_revoke
from governance.decision import Reason
from governance.models import (
    AccessRequest,
    AccessRequestStatus,
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    DelegationToken,
    DriftEvent,
    HumanStatus,
    Offboarding,
    Resource,
    SigningKey,
)
from governance.selectors import DECISION_ACTIONS
from reviews.models import DECIDED, Campaign, CampaignStatus, ItemKind, ItemStatus, ReviewItem

WINDOW_DAYS = 30
CREDENTIAL_REASONS = (Reason.CREDENTIAL_INVALID, Reason.CREDENTIAL_EXPIRED, Reason.CREDENTIAL_REVOKED)
SCOPE_REASONS = (Reason.SCOPE_NOT_DELEGATED, Reason.SCOPE_NOT_GRANTED, Reason.DELEGATOR_LACKS_GRANT)
# Revocations that record the link or agent whose revocation they followed (``cascade_from``).
CASCADE_ACTIONS = ("delegation.revoke", "agent.offboard")


@dataclass(frozen=True, slots=True)
class Framework:
    id: str
    name: str
    url: str


NHI = Framework(
    "owasp-nhi-2025",
    "OWASP Top 10 Non-Human Identities Risks 2025",
    "https://owasp.org/www-project-non-human-identities-top-10/2025/top-10-2025/",
)
ASI = Framework(
    "owasp-agentic-2026",
    "OWASP Top 10 for Agentic Applications (Agentic Security Initiative), identity items",
    "https://genai.owasp.org/resource/owasp-top-10-for-agentic-applications-for-2026/",
)
CSF = Framework(
    "nist-csf-2.0-pr-aa",
    "NIST Cybersecurity Framework 2.0, PR.AA Identity Management, Authentication, and Access Control",
    "https://www.nist.gov/cyberframework",
)
FRAMEWORKS = (NHI, ASI, CSF)


# --- The figures ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figures:
    """Every figure the evidence quotes, read at ``now``."""

    now: datetime
    agents: dict[str, int]
    keys: dict[str, Any]
    tokens: dict[str, Any]
    delegations: dict[str, int]
    revoke: TimeToRevoke
    reviews: dict[str, int]
    campaigns: dict[str, int]
    requests: dict[str, int]
    drift: dict[str, int]
    audit: dict[str, int]
    resources: dict[str, int]
    signing: dict[str, Any]


def _lifetime(end: str, start: str) -> ExpressionWrapper:
    return ExpressionWrapper(F(end) - F(start), output_field=DurationField())


def figures(now: datetime) -> Figures:
    """Twelve aggregate queries, whatever the size of the installation."""
    since = now - timedelta(days=WINDOW_DAYS)
    stale_since = now - timedelta(days=settings.CUSTOS_KEY_STALE_DAYS)
    in_force = Q(revoked_at__isnull=True, expires_at__gt=now)
    agents = Agent.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=Q(status=AgentStatus.ACTIVE)),
        suspended=Count("id", filter=Q(status=AgentStatus.SUSPENDED)),
        offboarded=Count("id", filter=Q(status=AgentStatus.OFFBOARDED)),
        sub_agents=Count("id", filter=Q(parent__isnull=False) & ~Q(status=AgentStatus.OFFBOARDED)),
        without_sponsor=Count("id", filter=Q(sponsor__isnull=True)),
        sponsor_gone=Count("id", filter=Q(status=AgentStatus.ACTIVE) & ~Q(sponsor__status=HumanStatus.ACTIVE)),
    )
    keys = AgentKey.objects.aggregate(
        total=Count("id"),
        active=Count("id", filter=in_force),
        leaked=Count("id", filter=Q(leaked=True)),
        past_max_age=Count("id", filter=in_force & Q(created_at__lt=now - settings.CUSTOS_KEY_MAX_AGE)),
        stale=Count(
            "id",
            filter=in_force
            & (Q(last_used_at__lt=stale_since) | Q(last_used_at__isnull=True, created_at__lt=stale_since)),
        ),
        without_expiry=Count("id", filter=Q(expires_at__isnull=True)),
        longest=Max(_lifetime("expires_at", "created_at"), filter=in_force),
        agents_with_keys=Count("agent", filter=in_force, distinct=True),
    )
    tokens = DelegationToken.objects.aggregate(
        issued=Count("id"),
        issued_window=Count("id", filter=Q(issued_at__gte=since)),
        revoked=Count("id", filter=Q(revoked_at__isnull=False)),
        revoked_leaked=Count("id", filter=Q(revoked_at__isnull=False, agent_key__leaked=True)),
        derived=Count("id", filter=Q(parent_token__isnull=False)),
        derived_revoked=Count("id", filter=Q(parent_token__isnull=False, revoked_at__isnull=False)),
        audiences=Count("audience", distinct=True),
        without_audience=Count("id", filter=Q(audience="")),
        longest=Max(_lifetime("expires_at", "issued_at")),
    )
    delegations = Delegation.objects.aggregate(
        in_force=Count("id", filter=Q(status=DelegationStatus.ACTIVE, expires_at__gt=now)),
        chained=Count("id", filter=Q(status=DelegationStatus.ACTIVE, expires_at__gt=now, depth__gte=1)),
        revoked=Count("id", filter=Q(status=DelegationStatus.REVOKED)),
        expired=Count("id", filter=Q(status=DelegationStatus.EXPIRED)),
    )
    reviews = ReviewItem.objects.aggregate(
        decided=Count("id", filter=Q(status__in=DECIDED)),
        revoked=Count("id", filter=Q(status=ItemStatus.REVOKED)),
        pending=Count("id", filter=Q(status=ItemStatus.PENDING)),
        overdue=Count("id", filter=Q(status=ItemStatus.PENDING, due_at__lt=now)),
        advise_revoke=Count("id", filter=Q(status=ItemStatus.PENDING, recommendation="revoke")),
        rerouted=Count("id", filter=Q(routing__startswith="fallback reviewer")),
        drift_items=Count("id", filter=Q(kind=ItemKind.DRIFT)),
        leak_items=Count("id", filter=Q(kind=ItemKind.KEY_LEAKED)),
        sponsor_items=Count("id", filter=Q(kind=ItemKind.SPONSOR_INACTIVE)),
    )
    campaigns = Campaign.objects.aggregate(
        active=Count("id", filter=Q(status=CampaignStatus.ACTIVE)),
        closed=Count("id", filter=Q(status=CampaignStatus.CLOSED)),
    )
    requests = AccessRequest.objects.aggregate(
        total=Count("id"),
        approved=Count("id", filter=Q(status=AccessRequestStatus.APPROVED)),
        denied=Count("id", filter=Q(status=AccessRequestStatus.DENIED)),
        expired=Count("id", filter=Q(status=AccessRequestStatus.EXPIRED)),
    )
    drift = DriftEvent.objects.aggregate(
        total=Count("id"),
        open=Count("id", filter=Q(acknowledged_at__isnull=True)),
        agents=Count("agent", distinct=True),
    )
    decisions = Q(action__in=DECISION_ACTIONS, occurred_at__gte=since)
    denied = decisions & Q(action="check.deny")
    audit = (
        AuditEvent.objects.filter(decisions | Q(action__in=CASCADE_ACTIONS))
        .annotate(
            reason=KT("context__reason"), cascade=KT("context__cascade_from"), via=KT("context__credential__kind")
        )
        .aggregate(
            decisions=Count("id", filter=decisions),
            denied=Count("id", filter=denied),
            credential_denials=Count("id", filter=denied & Q(reason__in=CREDENTIAL_REASONS)),
            scope_denials=Count("id", filter=denied & Q(reason__in=SCOPE_REASONS)),
            by_agent=Count("id", filter=decisions & Q(actor_kind=ActorKind.AGENT)),
            by_token=Count("id", filter=decisions & Q(via="delegation_token")),
            cascades=Count("id", filter=Q(action__in=CASCADE_ACTIONS, cascade__isnull=False)),
        )
    )
    resources = Resource.objects.aggregate(
        total=Count("id"),
        sensitive=Count("id", filter=Q(sensitivity__in=("high", "critical"))),
        owners=Count("owner", distinct=True),
    )
    signing = SigningKey.objects.filter(activated_at__lte=now, verifies_until__gt=now).aggregate(
        published=Count("id"), algorithms=Count("algorithm", distinct=True)
    )
    return Figures(
        now=now,
        agents=agents,
        keys=keys,
        tokens=tokens,
        delegations=delegations,
        revoke=time_to_revoke(Offboarding.objects.all()),
        reviews=reviews,
        campaigns=campaigns,
        requests=requests,
        drift=drift,
        audit=audit,
        resources=resources,
        signing=signing,
    )


# --- Evidence -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    label: str
    value: int | str
    url: str = ""
    note: str = ""


def _url(name: str, **query: str) -> str:
    base = reverse(f"console:{name}")
    return f"{base}?{urlencode(query)}" if query else base


def _audit(**query: str) -> str:
    return _url("audit", **query)


def _since(f: Figures) -> str:
    return (f.now - timedelta(days=WINDOW_DAYS)).date().isoformat()


def _days(value: timedelta | None) -> str:
    if value is None:
        return "—"
    if value < timedelta(days=1):
        return humanise_ms(round(value.total_seconds() * 1000))
    return f"{value.days} days"


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "—"


def _nhi1(f: Figures) -> list[Evidence]:
    return [
        Evidence("agents offboarded", f.agents["offboarded"], _url("agents", status="offboarded")),
        Evidence(
            "median time to revoke",
            humanise_ms(f.revoke.median_ms),
            _audit(action="agent.offboard"),
            f"over the latest {f.revoke.measured} offboardings" if f.revoke.measured else "no offboarding yet",
        ),
        Evidence(
            "active agents whose sponsor is no longer active",
            f.agents["sponsor_gone"],
            _url("reviews", show="all", kind=ItemKind.SPONSOR_INACTIVE),
            "each gets a succession review",
        ),
        Evidence("delegation links ended by expiry", f.delegations["expired"], _audit(action="delegation.expire")),
    ]


def _nhi2(f: Figures) -> list[Evidence]:
    return [
        Evidence("keys reported leaked", f.keys["leaked"], _audit(action="agentkey.")),
        Evidence(
            "tokens revoked with their leaked key",
            f.tokens["revoked_leaked"],
            _audit(action="token.revoke"),
        ),
        Evidence(
            "leaked-key reviews opened", f.reviews["leak_items"], _url("reviews", show="all", kind=ItemKind.KEY_LEAKED)
        ),
        Evidence("agent key secrets stored", 0, "", "only a prefix and a keyed hash are kept"),
    ]


def _nhi3(f: Figures) -> list[Evidence]:
    return [
        Evidence("resources registered, each with an accountable owner", f.resources["total"], _url("resources")),
        Evidence("high or critical resources", f.resources["sensitive"], _url("resources", sensitivity="critical")),
        Evidence("token audiences in use", f.tokens["audiences"], "", "each token is bound to one audience"),
    ]


def _nhi4(f: Figures) -> list[Evidence]:
    return [
        Evidence(f"delegation tokens issued · {WINDOW_DAYS} days", f.tokens["issued_window"], _audit(action="token.")),
        Evidence("longest token lifetime", _days(f.tokens["longest"]), "", "short-lived by design"),
        Evidence(
            f"checks refused for a bad credential · {WINDOW_DAYS} days",
            f.audit["credential_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
        Evidence("signing keys published (JWKS)", f.signing["published"], "/.well-known/jwks.json"),
    ]


def _nhi5(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            "pending reviews advising revoke (unused access)",
            f.reviews["advise_revoke"],
            _url("reviews", show="all", recommendation="revoke"),
            f"unused {settings.CUSTOS_REVIEW_UNUSED_DAYS} days or never",
        ),
        Evidence(
            f"checks refused outside the delegated scopes · {WINDOW_DAYS} days",
            f.audit["scope_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
        Evidence(
            "just-in-time requests approved / denied",
            f"{f.requests['approved']} / {f.requests['denied']}",
            _url("access_requests", status="all"),
        ),
    ]


def _nhi6(f: Figures) -> list[Evidence]:
    return [
        Evidence("tokens without an audience", f.tokens["without_audience"], "", "every token names its audience"),
        Evidence(
            "maximum delegation lifetime (configured)",
            _days(settings.CUSTOS_DELEGATION_MAX_LIFETIME),
            "",
            "CUSTOS_DELEGATION_MAX_LIFETIME",
        ),
    ]


def _nhi7(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            "keys in force past the maximum age",
            f.keys["past_max_age"],
            _url("home") + "#keys",
            f"older than {settings.CUSTOS_KEY_MAX_AGE.days} days (CUSTOS_KEY_MAX_AGE)",
        ),
        Evidence(
            "keys without expiry",
            f.keys["without_expiry"],
            "",
            "none possible: expires_at is required and the agentkey_expires constraint keeps it after creation",
        ),
        Evidence(
            "longest lifetime of a key in force",
            _days(f.keys["longest"]),
            "",
            f"capped at {settings.CUSTOS_KEY_MAX_TTL.days} days (CUSTOS_KEY_MAX_TTL)",
        ),
        Evidence(
            "stale keys in force",
            f.keys["stale"],
            _url("home") + "#keys",
            f"unused {settings.CUSTOS_KEY_STALE_DAYS}+ days",
        ),
    ]


def _nhi8(f: Figures) -> list[Evidence]:
    return [
        Evidence("token audiences in use", f.tokens["audiences"], "", "a token is refused by any other audience"),
        Evidence("delegation links in force", f.delegations["in_force"], _url("delegations")),
    ]


def _nhi9(f: Figures) -> list[Evidence]:
    return [
        Evidence("agents registered", f.agents["total"], _url("agents")),
        Evidence("sub-agents with their own identity", f.agents["sub_agents"], _url("agents", level="sub")),
        Evidence("agents holding keys in force", f.keys["agents_with_keys"], _url("agents", status="active")),
        Evidence(
            f"checks attributed to one identified agent · {WINDOW_DAYS} days",
            _percent(f.audit["by_agent"], f.audit["decisions"]),
            _audit(action="check.", since=_since(f)),
        ),
    ]


def _nhi10(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            "agents without an accountable sponsor", f.agents["without_sponsor"], _url("agents"), "sponsor is required"
        ),
        Evidence(
            f"checks naming the human they act for · {WINDOW_DAYS} days",
            _percent(f.audit["by_token"], f.audit["decisions"]),
            _audit(action="check.", since=_since(f)),
            "delegation tokens carry sub = the human, act = the agents",
        ),
    ]


def _asi03(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            f"checks refused outside the delegated scopes · {WINDOW_DAYS} days",
            f.audit["scope_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
        Evidence("delegation links in force", f.delegations["in_force"], _url("delegations")),
        Evidence("just-in-time requests", f.requests["total"], _url("access_requests", status="all")),
    ]


def _asi07(f: Figures) -> list[Evidence]:
    return [
        Evidence("sub-agent tokens derived from a parent token", f.tokens["derived"], _audit(action="token.")),
        Evidence("links below another link in force", f.delegations["chained"], _url("delegations")),
        Evidence("signing keys published (JWKS)", f.signing["published"], "/.well-known/jwks.json"),
    ]


def _asi08(f: Figures) -> list[Evidence]:
    return [
        Evidence("cascade revocations recorded", f.audit["cascades"], _audit(action="delegation.revoke")),
        Evidence(
            "derived tokens revoked with their parent", f.tokens["derived_revoked"], _audit(action="token.revoke")
        ),
        Evidence("delegation links revoked", f.delegations["revoked"], _url("delegations", state="all")),
    ]


def _asi10(f: Figures) -> list[Evidence]:
    return [
        Evidence("drift events raised", f.drift["total"], _url("drift", state="all"), f"on {f.drift['agents']} agents"),
        Evidence("drift events open", f.drift["open"], _url("drift")),
        Evidence("drift reviews opened", f.reviews["drift_items"], _url("reviews", show="all", kind=ItemKind.DRIFT)),
        Evidence("agents suspended", f.agents["suspended"], _url("agents", status="suspended")),
    ]


def _pr_aa_01(f: Figures) -> list[Evidence]:
    return [
        Evidence("agents active", f.agents["active"], _url("agents", status="active")),
        Evidence("agent keys in force", f.keys["active"], _url("home") + "#keys"),
        Evidence("agents offboarded", f.agents["offboarded"], _url("agents", status="offboarded")),
    ]


def _pr_aa_02(f: Figures) -> list[Evidence]:
    return [
        Evidence("delegation links in force", f.delegations["in_force"], _url("delegations")),
        Evidence(f"tokens issued · {WINDOW_DAYS} days", f.tokens["issued_window"], _audit(action="token.")),
    ]


def _pr_aa_03(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            f"checks authenticated · {WINDOW_DAYS} days", f.audit["decisions"], _audit(action="check.", since=_since(f))
        ),
        Evidence(
            f"refused for a bad credential · {WINDOW_DAYS} days",
            f.audit["credential_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
    ]


def _pr_aa_04(f: Figures) -> list[Evidence]:
    return [
        Evidence("signing keys published (JWKS)", f.signing["published"], "/.well-known/jwks.json"),
        Evidence("tokens revoked", f.tokens["revoked"], _audit(action="token.revoke")),
        Evidence("longest token lifetime", _days(f.tokens["longest"])),
    ]


def _pr_aa_05(f: Figures) -> list[Evidence]:
    return [
        Evidence("review items completed", f.reviews["decided"], _url("campaigns")),
        Evidence("review items overdue", f.reviews["overdue"], _url("reviews", show="all", overdue="on")),
        Evidence(
            "items routed to the fallback reviewer",
            f.reviews["rerouted"],
            _url("reviews", show="all"),
            "separation of duties, or the reviewer could not review",
        ),
        Evidence("campaigns active / closed", f"{f.campaigns['active']} / {f.campaigns['closed']}", _url("campaigns")),
    ]


# --- The mapping ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    framework: Framework
    id: str
    title: str
    control: str
    evidence: Callable[[Figures], list[Evidence]]
    # The official wording, where the framework gives one sentence (NIST CSF's subcategories).
    wording: str = ""


ITEMS: tuple[Item, ...] = (
    Item(
        NHI,
        "NHI1",
        "Improper Offboarding",
        "One-step offboarding of an agent with everything under it: its keys, grants, delegation links and live "
        "tokens are revoked and its sub-agents offboarded, recursively, with a preview of exactly what is cut; a "
        "human leaver's delegations are revoked and their agents re-sponsored or suspended. The time from the "
        "click to the last credential refused is measured. Expiry sweeps end what lapses, cascading to the "
        "links below; an agent whose sponsor leaves gets a succession review.",
        _nhi1,
    ),
    Item(
        NHI,
        "NHI2",
        "Secret Leakage",
        "Agent keys are shown once and stored as a prefix and a keyed hash, never the secret. Reporting a key "
        "leaked revokes it and every token it obtained (and the tokens derived from those) and opens a review "
        "of the agent's access, since whoever held the key may have used it.",
        _nhi2,
    ),
    Item(
        NHI,
        "NHI3",
        "Vulnerable Third-Party NHI",
        "Every tool, API and service an agent reaches is a registered resource with an owner and a sensitivity; "
        "access is per scope (resource:action) and each token is bound to one audience (RFC 8707), so a "
        "compromised third party holds only what was delegated to it, for minutes.",
        _nhi3,
    ),
    Item(
        NHI,
        "NHI4",
        "Insecure Authentication",
        "Agents authenticate with their own key, exchanged (RFC 8693) for a short-lived EdDSA-signed "
        "delegation token; every check verifies signature, expiry and revocation at once, default deny, fail "
        "closed. No shared passwords, no long-lived bearer secrets in requests.",
        _nhi4,
    ),
    Item(
        NHI,
        "NHI5",
        "Overprivileged NHI",
        "Delegation only attenuates (a link's scopes are a subset of its parent's and of the root human's "
        "grants); agent grants always expire, capped; just-in-time requests give a narrow, short grant for one "
        "task; reviews recommend revoking what recorded use shows is unused; blast radius ranks the queues.",
        _nhi5,
    ),
    Item(
        NHI,
        "NHI6",
        "Insecure Cloud Deployment Configurations",
        "Partly in scope: Custos does not scan cloud configuration. It removes static deployment secrets from "
        "agents' paths (short-lived, audience-bound tokens instead), reads its own configuration from the "
        "environment and refuses bad values at start-up, and bounds every lifetime by configuration.",
        _nhi6,
    ),
    Item(
        NHI,
        "NHI7",
        "Long-Lived Secrets",
        "Every agent key expires (a database constraint; default and maximum lifetimes by configuration) and "
        "rotates with a bounded overlap; key hygiene flags keys unused for the stale period and keys past the "
        "maximum age; delegation tokens live minutes, never past their delegation.",
        _nhi7,
    ),
    Item(
        NHI,
        "NHI8",
        "Environment Isolation",
        "Partly in scope: tokens are bound to the audience they were issued for (an MCP server, an API) and "
        "refused elsewhere, and each delegation names its purpose; separate environments run separate Custos "
        "installations with their own signing keys.",
        _nhi8,
    ),
    Item(
        NHI,
        "NHI9",
        "NHI Reuse",
        "Each agent is its own identity with its own keys; a sub-agent gets its own identity and its own "
        "delegation link rather than its parent's credential; every decision is recorded against the agent "
        "that made it, so reuse shows and is attributable.",
        _nhi9,
    ),
    Item(
        NHI,
        "NHI10",
        "Human Use of NHI",
        "Every agent has an accountable human sponsor (required); a delegation token names the human it acts "
        "for (sub) and the chain of agents acting (act), so an action is never anonymous; console users act "
        "under their own accounts and personal API tokens, never an agent's key.",
        _nhi10,
    ),
    Item(
        ASI,
        "ASI03",
        "Identity and Privilege Abuse",
        "Agents are delegated actors: every request is authorised when it happens against the chain of "
        "delegations back to the human, with attenuation only; an agent may delegate only to its own "
        "sub-agents, within its remaining depth; scopes outside the chain are refused and recorded.",
        _asi03,
    ),
    Item(
        ASI,
        "ASI07",
        "Insecure Inter-Agent Communication",
        "What one agent passes to a sub-agent is a signed token whose nested act claim carries the whole actor "
        "chain, obtained by token exchange from the parent's token and verifiable offline with the JWKS; the "
        "sub-agent's token never carries more scopes, audience or lifetime than its parent's.",
        _asi07,
    ),
    Item(
        ASI,
        "ASI08",
        "Cascading Failures",
        "Revocation cascades down, never sideways: revoking a link revokes every link below it, suspending an "
        "agent suspends its sub-agents, revoking a token revokes the tokens derived from it; checks fail closed "
        "when the database, cache or audit write fails.",
        _asi08,
    ),
    Item(
        ASI,
        "ASI10",
        "Rogue Agents",
        "Drift detection: repeated denials or out-of-scope attempts raise a drift event that opens a review; an "
        "agent can be suspended (with its sub-agents) or offboarded in one step, effective on the very next "
        "check; every decision is in the tamper-evident audit log.",
        _asi10,
    ),
    Item(
        CSF,
        "PR.AA-01",
        "Identity management",
        "A registry of agents, each with a sponsor, purpose and risk tier; keys issued, rotated, expired and "
        "revoked through services that write an audit event per change; humans' status (active, suspended, "
        "left) governs every agent acting for them.",
        _pr_aa_01,
        "Identities and credentials for authorized users, services, and hardware are managed by the organization",
    ),
    Item(
        CSF,
        "PR.AA-02",
        "Identity proofing and binding",
        "A key is bound to one agent; a token is bound to one delegation (the human, the purpose, the scopes), "
        "one audience and, for sub-agents, the parent token it was exchanged from.",
        _pr_aa_02,
        "Identities are proofed and bound to credentials based on the context of interactions",
    ),
    Item(
        CSF,
        "PR.AA-03",
        "Authentication",
        "Every runtime check authenticates the agent's key or token first; console users sign in with "
        "throttled logins and personal API tokens stored as keyed hashes.",
        _pr_aa_03,
        "Users, services, and hardware are authenticated",
    ),
    Item(
        CSF,
        "PR.AA-04",
        "Identity assertions",
        "Delegation tokens are signed JWTs (EdDSA) with a kid, keys published as JWKS and rotated "
        "with overlap, verifiable offline; introspection and revocation (RFC 7662, RFC 7009) are honoured on "
        "every check.",
        _pr_aa_04,
        "Identity assertions are protected, conveyed, and verified",
    ),
    Item(
        CSF,
        "PR.AA-05",
        "Access permissions and reviews",
        "Grants and delegations are time-bounded and attenuate only; campaigns and event-driven micro-reviews "
        "certify or revoke with recorded use as advice; separation of duties routes conflicted items to a "
        "fallback reviewer; overdue items are reminded and escalated.",
        _pr_aa_05,
        "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and "
        "reviewed, and incorporate the principles of least privilege and separation of duties",
    ),
)


@dataclass(frozen=True, slots=True)
class Row:
    item: Item
    evidence: list[Evidence]


@dataclass(frozen=True, slots=True)
class Section:
    framework: Framework
    rows: list[Row]


def mapping(f: Figures) -> list[Section]:
    return [
        Section(framework, [Row(item, item.evidence(f)) for item in ITEMS if item.framework is framework])
        for framework in FRAMEWORKS
    ]


def as_json(sections: list[Section], f: Figures, absolute: Callable[[str], str]) -> dict[str, Any]:
    """The mapping with its evidence for auditors' working papers; links made absolute by ``absolute``."""
    return {
        "generated_at": f.now.isoformat(),
        "installation": settings.CUSTOS_ISSUER,
        "frameworks": [
            {
                "id": s.framework.id,
                "name": s.framework.name,
                "url": s.framework.url,
                "items": [
                    {
                        "id": r.item.id,
                        "title": r.item.title,
                        "wording": r.item.wording,
                        "control": r.item.control,
                        "evidence": [
                            {
                                "label": e.label,
                                "value": e.value,
                                "url": absolute(e.url) if e.url else "",
                                "note": e.note,
                            }
                            for e in r.evidence
                        ],
                    }
                    for r in s.rows
                ],
            }
            for s in sections
        ],
    }
