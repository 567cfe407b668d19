"""The standing campaigns, fed by jobs rather than launches: recertification of access nearing its end,
and micro-reviews of events that call an agent's access into question. Both open items idempotently
(one per subject: a rerun, or two beats, open nothing twice) into the same queues as campaigns."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.models import ActorKind, AuditEvent
from audit.services import Actor, audit_append, audit_append_many
from governance.models import (
    AccessRequest,
    AccessRequestStatus,
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DriftEvent,
    Grant,
    HumanStatus,
)
from reviews.candidates import Context, Draft
from reviews.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    Decision,
    ItemKind,
    ItemStatus,
    JustificationRule,
    NoResponse,
    NotificationKind,
    ReviewerRule,
    ReviewItem,
)
from reviews.recommend import Advice, scopes_advice
from reviews.services.campaigns import campaign_ref, insert_items
from reviews.services.items import decided_event
from reviews.services.notify import notify_reviewers

STANDING: dict[str, tuple[str, str]] = {
    CampaignKind.RECERTIFICATION: (
        "Recertification",
        "Access nearing its end: renew it for another term, or let it expire as planned.",
    ),
    CampaignKind.MICRO: (
        "Micro-reviews",
        "Events that call an agent's access into question: drift, a sponsor who left, a used just-in-time "
        "grant, a key reported leaked.",
    ),
}
# How far back a used just-in-time grant, or a change of sponsor, is looked for.
JIT_LOOKBACK = timedelta(days=7)
SUCCESSION_LOOKBACK = timedelta(days=7)


def standing_campaign(kind: str) -> Campaign:
    """The standing campaign of ``kind``, created (and audited) on first use."""
    found = Campaign.objects.filter(kind=kind).first()
    if found is not None:
        return found
    name, description = STANDING[kind]
    now = timezone.now()
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                name=name,
                description=description,
                kind=kind,
                status=CampaignStatus.ACTIVE,
                subjects=[],
                reviewer_rule=ReviewerRule.SPONSOR_MANAGER,
                reminder_days=[1],
                escalate_after_days=2,
                no_response=NoResponse.KEEP,
                justification=JustificationRule.REVOKE,
                created_by="system",
                launched_at=now,
                generated_at=now,
            )
            audit_append(actor=Actor.system("reviews"), action="campaign.create", target=campaign_ref(campaign))
            return campaign
    except IntegrityError:  # created concurrently
        return Campaign.objects.get(kind=kind)


def _open(campaign: Campaign, found: list[Draft], ctx: Context, due: dict[str, datetime], actor: Actor) -> int:
    existing = set(
        ReviewItem.objects.filter(campaign=campaign, subject_key__in=[d.subject_key for d in found]).values_list(
            "subject_key", flat=True
        )
    )
    fresh = [
        ctx.finish(d, rule=campaign.reviewer_rule, fallback_id=campaign.fallback_reviewer_id, named_id=None)
        for d in found
        if d.subject_key not in existing
    ]
    if not fresh:
        return 0
    with transaction.atomic():
        items = insert_items(fresh, campaign, due, actor)
        notify_reviewers(
            campaign,
            NotificationKind.ASSIGNED,
            ReviewItem.objects.filter(pk__in=items),
            subject=f"{campaign.name}: new items",
            body="{items} new items await your review in {campaign}.",
        )
    return len(items)


def _close_pending(campaign: Campaign, items: list[ReviewItem], status: str, by: str, actor: Actor) -> int:
    if not items:
        return 0
    now = timezone.now()
    with transaction.atomic():
        locked = list(
            ReviewItem.objects.select_for_update().filter(pk__in=[i.pk for i in items], status=ItemStatus.PENDING)
        )
        for item in locked:
            item.status, item.decided_at, item.decided_by = status, now, by
        ReviewItem.objects.bulk_update(locked, ["status", "decided_at", "decided_by"])
        audit_append_many([decided_event(item, actor) for item in locked])
    return len(locked)


# --- Recertification ----------------------------------------------------------------------------


def recertification_open_due(*, now: datetime | None = None) -> dict[str, int]:
    """Open a "renew?" item for each agent's grant and each delegation ending within
    ``CUSTOS_RECERT_LEAD_TIME``, due when it ends; close as lapsed the items whose access ended
    undecided (silence lets it expire as planned) or ended otherwise."""
    now = now or timezone.now()
    campaign = standing_campaign(CampaignKind.RECERTIFICATION)
    actor = Actor.system("recertification")
    horizon = now + settings.CUSTOS_RECERT_LEAD_TIME
    grants = list(
        Grant.objects.active(now)
        .filter(holder_agent__isnull=False, expires_at__lte=horizon)
        .select_related("resource", "holder_agent")
    )
    links = list(
        Delegation.objects.active(now).filter(expires_at__lte=horizon).select_related("root_human", "delegate")
    )
    opened = 0
    if grants or links:
        ctx = Context.load(now=now)
        found: list[Draft] = []
        due: dict[str, datetime] = {}
        for grant in grants:
            assert grant.holder_agent is not None and grant.expires_at is not None
            key = f"renewal:grant:{grant.pk}:{grant.expires_at:%Y%m%dT%H%M%S}"
            found.append(
                Draft(
                    kind=ItemKind.RENEWAL,
                    subject_key=key,
                    agent_id=grant.holder_agent_id,  # type: ignore[arg-type]
                    label=f"{grant.holder_agent.name} → {grant.scope} ends {grant.expires_at:%Y-%m-%d}",
                    scopes=[grant.scope],
                    grant_id=grant.pk,
                    made_by=[ctx.org.human_of_user(grant.granted_by_user_id)],
                    resource_owner_id=grant.resource.owner_id,
                    advice=scopes_advice(
                        [grant.scope],
                        ctx.usage.get(grant.holder_agent_id or 0, {}),
                        now=now,
                        unused_days=ctx.unused_days,
                        renewal=True,
                    ),
                )
            )
            due[key] = grant.expires_at
        for link in links:
            key = f"renewal:delegation:{link.pk}:{link.expires_at:%Y%m%dT%H%M%S}"
            found.append(
                Draft(
                    kind=ItemKind.RENEWAL,
                    subject_key=key,
                    agent_id=link.delegate_id,
                    label=f"#{link.pk} {link.root_human.name} → {link.delegate.name} ends {link.expires_at:%Y-%m-%d}",
                    scopes=list(link.scopes),
                    delegation_id=link.pk,
                    made_by=[link.root_human_id, ctx.org.human_of_user(link.created_by_user_id)],
                    resource_owner_id=ctx.most_sensitive_owner(list(link.scopes)),
                    advice=scopes_advice(
                        list(link.scopes),
                        ctx.usage.get(link.delegate_id, {}),
                        now=now,
                        unused_days=ctx.unused_days,
                        renewal=True,
                    ),
                )
            )
            due[key] = link.expires_at
        opened = _open(campaign, found, ctx, due, actor)
    # Undecided renewals whose access has ended: they lapse, as planned.
    ended = [
        item
        for item in ReviewItem.objects.filter(campaign=campaign, status=ItemStatus.PENDING).select_related(
            "grant", "delegation"
        )
        if not (
            item.grant.is_in_force(now)
            if item.grant
            else item.delegation.is_in_force(now)
            if item.delegation
            else False
        )
    ]
    lapsed = _close_pending(campaign, ended, ItemStatus.LAPSED, "no response (expired as planned)", actor)
    return {"opened": opened, "lapsed": lapsed}


# --- Micro-reviews ------------------------------------------------------------------------------


def _jit_uses(request: AccessRequest) -> int:
    """Allowed checks the agent made under the just-in-time delegation since it was granted."""
    link_id = request.resulting_delegation_id
    assert request.decided_at is not None
    events = (
        AuditEvent.objects.for_actor(ActorKind.AGENT, request.agent_id)
        .filter(action="check.allow", occurred_at__gte=request.decided_at)
        .order_by("-id")
        .values_list("context", flat=True)[:500]
    )
    return sum(1 for c in events if isinstance(c, dict) and link_id in (c.get("delegation_chain") or []))


def micro_reviews_open(*, now: datetime | None = None) -> dict[str, int]:
    """Open a micro-review for each new drift event, agent whose sponsor left or was suspended, agent
    handed to a new sponsor, used just-in-time grant and key reported leaked; close as ended the pending
    ones whose agent stopped."""
    now = now or timezone.now()
    campaign = standing_campaign(CampaignKind.MICRO)
    actor = Actor.system("micro-reviews")
    due_at = now + settings.CUSTOS_MICRO_REVIEW_DUE
    found: list[Draft] = []
    active = {"agent__status": AgentStatus.ACTIVE}
    drifts = list(DriftEvent.objects.open().filter(**active).select_related("agent"))
    # How often each of these agents drifted in 30 days: one grouped read, not one per event.
    drifted = Counter(
        DriftEvent.objects.filter(
            agent_id__in={e.agent_id for e in drifts}, created_at__gte=now - timedelta(days=30)
        ).values_list("agent_id", flat=True)
    )
    for event in drifts:
        recent = drifted[event.agent_id]
        advice = (
            Advice(Decision.REVOKE, f"drifted {recent} times in 30 days")
            if recent > 1
            else Advice(Decision.CERTIFY, f"one episode: {event.count} out-of-scope attempts, all refused")
        )
        found.append(
            Draft(
                kind=ItemKind.DRIFT,
                subject_key=f"drift:{event.pk}",
                agent_id=event.agent_id,
                label=f"{event.agent.name}: {event.count} refused {event.reason.replace('_', ' ')}",
                scopes=list(event.detail.get("scopes", []))[:20],
                drift_event_id=event.pk,
                advice=advice,
            )
        )
    orphaned = Agent.objects.active().exclude(sponsor__status=HumanStatus.ACTIVE).select_related("sponsor")
    for agent in orphaned:
        sponsor = agent.sponsor
        gone = "left" if sponsor.status == HumanStatus.LEFT else "was suspended"
        found.append(
            Draft(
                kind=ItemKind.SPONSOR_INACTIVE,
                subject_key=f"sponsor:{agent.pk}:{sponsor.pk}:{sponsor.status}",
                agent_id=agent.pk,
                label=f"{agent.name}: sponsor {sponsor.name} {gone}",
                advice=Advice(Decision.REVOKE, f"its sponsor {gone}; nobody is accountable for it"),
            )
        )
    # Succession: an agent handed to a new sponsor when its sponsor left (governance's human offboarding).
    for agent in (
        Agent.objects.active().filter(sponsor_changed_at__gte=now - SUCCESSION_LOOKBACK).select_related("sponsor")
    ):
        assert agent.sponsor_changed_at is not None
        found.append(
            Draft(
                kind=ItemKind.SPONSOR_INACTIVE,
                subject_key=f"succession:{agent.pk}:{agent.sponsor_id}:{agent.sponsor_changed_at:%Y%m%dT%H%M%S}",
                agent_id=agent.pk,
                label=f"{agent.name}: now sponsored by {agent.sponsor.name} (its sponsor left)",
                advice=Advice(
                    Decision.CERTIFY,
                    f"handed to {agent.sponsor.name}, the previous sponsor's manager: confirm it still needs it",
                ),
            )
        )
    approved = AccessRequest.objects.filter(
        status=AccessRequestStatus.APPROVED,
        resulting_delegation__isnull=False,
        decided_at__gte=now - JIT_LOOKBACK,
        agent__status=AgentStatus.ACTIVE,
    ).select_related("agent")
    reviewed = set(
        ReviewItem.objects.filter(campaign=campaign, kind=ItemKind.JIT_USED).values_list("access_request_id", flat=True)
    )
    for request in approved:
        if request.pk in reviewed:
            continue
        uses = _jit_uses(request)
        if not uses:
            continue
        found.append(
            Draft(
                kind=ItemKind.JIT_USED,
                subject_key=f"jit:{request.pk}",
                agent_id=request.agent_id,
                label=f"{request.agent.name} used just-in-time {request.scope}",
                scopes=[request.scope],
                access_request_id=request.pk,
                advice=Advice(
                    Decision.CERTIFY, f"used {'once' if uses == 1 else f'{uses} times'} within the scope it asked for"
                ),
            )
        )
    for key in AgentKey.objects.filter(leaked=True, **active).select_related("agent"):
        replaced = AgentKey.objects.active(now).filter(agent_id=key.agent_id).exists()
        found.append(
            Draft(
                kind=ItemKind.KEY_LEAKED,
                subject_key=f"leak:{key.pk}",
                agent_id=key.agent_id,
                label=f"{key.agent.name}: key {key.display} reported leaked",
                key_id=key.pk,
                advice=Advice(Decision.CERTIFY, "the leaked key is revoked and the agent uses a new one")
                if replaced
                else Advice(Decision.REVOKE, "the leaked key was its only key"),
            )
        )
    opened = 0
    if found:
        opened = _open(campaign, found, Context.load(now=now), {d.subject_key: due_at for d in found}, actor)
    stopped = list(
        ReviewItem.objects.filter(campaign=campaign, status=ItemStatus.PENDING).exclude(
            agent__status=AgentStatus.ACTIVE
        )
    )
    ended = _close_pending(campaign, stopped, ItemStatus.OBSOLETE, "agent no longer active", actor)
    return {"opened": opened, "ended": ended}
