"""The figures the framework mapping quotes: a fixed handful of aggregate queries read at one moment,
whatever the installation's size."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q
from django.db.models.fields.json import KT

from audit.models import ActorKind, AuditEvent
from custody.overview import TimeToRevoke, time_to_revoke
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
