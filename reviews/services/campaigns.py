"""Campaigns: create and edit a draft, preview it, launch it (items are generated in the background, in
chunks, each chunk with its audit events), close it (the no-response outcome), and launch recurring
campaigns' next occurrence — once, however many beat processes ask."""

from __future__ import annotations

import calendar
import json
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cronsim import CronSim, CronSimError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import Actor, PendingEvent, Target, audit_append, audit_append_many
from console.errors import Conflict, ValidationFailed
from governance.models import Human, Resource, Sensitivity
from governance.services._rules import require_choice, require_text, user_id_of
from reviews.candidates import Context, Draft, drafts
from reviews.models import (
    Campaign,
    CampaignKind,
    CampaignStatus,
    ItemStatus,
    JustificationRule,
    NoResponse,
    NotificationKind,
    Recurrence,
    ReviewerRule,
    ReviewItem,
    Risk,
    Subject,
    queue_key,
)
from reviews.services.notify import notify_reviewers

log = logging.getLogger(__name__)

GENERATION_CHUNK = 5000
# A generation claim older than this is taken over (its worker died).
CLAIM_TIMEOUT = timedelta(minutes=10)
MAX_DURATION_DAYS = 365
# What may change on a standing campaign (recertification, micro-reviews).
STANDING_EDITABLE = (
    "reviewer_rule",
    "named_reviewer",
    "fallback_reviewer",
    "reminder_days",
    "escalate_after_days",
    "justification",
    "bulk_risks",
)
EDITABLE = (
    "name",
    "description",
    "subjects",
    "filter_resource",
    "filter_min_sensitivity",
    "filter_department",
    "filter_unused_days",
    "reviewer_rule",
    "named_reviewer",
    "fallback_reviewer",
    "duration_days",
    "recurrence",
    "cron",
    "reminder_days",
    "escalate_after_days",
    "no_response",
    "justification",
    "bulk_risks",
)


def campaign_ref(campaign: Campaign) -> Target:
    return Target(type="campaign", id=str(campaign.pk), label=campaign.name[:200])


# --- Recurrence ---------------------------------------------------------------------------------


def _add_months(moment: datetime, months: int) -> datetime:
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def next_occurrence(recurrence: str, cron: str, after: datetime) -> datetime | None:
    """When a recurring campaign next launches, after ``after`` (its last launch)."""
    if recurrence == Recurrence.MONTHLY:
        return _add_months(after, 1)
    if recurrence == Recurrence.QUARTERLY:
        return _add_months(after, 3)
    if recurrence == Recurrence.CRON:
        return next(iter(CronSim(cron, after)))
    return None


# --- Validation ---------------------------------------------------------------------------------


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    """Check a campaign's settings; return them normalised. Field errors carry the field's name."""
    out = dict(values)
    out["name"] = require_text(values.get("name", ""), "name", max_length=200, label="Name")
    out["description"] = (values.get("description") or "").strip()
    subjects = values.get("subjects") or []
    if not isinstance(subjects, list) or not subjects or any(s not in Subject.values for s in subjects):
        raise ValidationFailed(
            f"Choose what to review: one or more of {', '.join(Subject.values)}.",
            code="invalid_subjects",
            field="subjects",
        )
    out["subjects"] = sorted(set(subjects), key=Subject.values.index)
    sensitivity = values.get("filter_min_sensitivity") or ""
    if sensitivity:
        require_choice(sensitivity, Sensitivity, "filter_min_sensitivity")
    out["filter_min_sensitivity"] = sensitivity
    out["filter_department"] = (values.get("filter_department") or "").strip()[:120]
    unused = values.get("filter_unused_days")
    if unused is not None and (type(unused) is not int or not 1 <= unused <= 3650):
        raise ValidationFailed("Unused for: 1 to 3650 days.", code="invalid_days", field="filter_unused_days")
    rule = require_choice(values.get("reviewer_rule") or ReviewerRule.SPONSOR_MANAGER, ReviewerRule, "reviewer_rule")
    out["reviewer_rule"] = rule
    if rule == ReviewerRule.NAMED and values.get("named_reviewer") is None:
        raise ValidationFailed("Name the reviewer this rule assigns.", code="required", field="named_reviewer")
    for name in ("named_reviewer", "fallback_reviewer"):
        human = values.get(name)
        if human is not None and not isinstance(human, Human):
            raise ValidationFailed("Not a known person.", code="invalid", field=name)
    if values.get("fallback_reviewer") is None:
        raise ValidationFailed(
            "Name a fallback reviewer: items the rule cannot route (separation of duties, a reviewer who left) go "
            "to them.",
            code="required",
            field="fallback_reviewer",
        )
    resource = values.get("filter_resource")
    if resource is not None and not isinstance(resource, Resource):
        raise ValidationFailed("Not a known resource.", code="invalid", field="filter_resource")
    duration = values.get("duration_days", 14)
    if type(duration) is not int or not 1 <= duration <= MAX_DURATION_DAYS:
        raise ValidationFailed(
            f"Reviewers need 1 to {MAX_DURATION_DAYS} days.", code="invalid_days", field="duration_days"
        )
    out["duration_days"] = duration
    recurrence = require_choice(values.get("recurrence") or Recurrence.NONE, Recurrence, "recurrence")
    out["recurrence"] = recurrence
    cron = (values.get("cron") or "").strip()
    if recurrence == Recurrence.CRON:
        try:
            next(iter(CronSim(cron, timezone.now())))
        except (CronSimError, StopIteration):
            raise ValidationFailed(
                "Not a cron expression (five fields: minute hour day month weekday, e.g. '0 9 1 */3 *').",
                code="invalid_cron",
                field="cron",
            ) from None
    out["cron"] = cron if recurrence == Recurrence.CRON else ""
    reminders = values.get("reminder_days") or []
    if not isinstance(reminders, list) or any(type(d) is not int or not 0 <= d <= 365 for d in reminders):
        raise ValidationFailed(
            "Reminders: days before the due date, 0 to 365 each.", code="invalid_days", field="reminder_days"
        )
    out["reminder_days"] = sorted(set(reminders), reverse=True)
    escalate = values.get("escalate_after_days")
    if escalate is not None and (type(escalate) is not int or not 0 <= escalate <= 365):
        raise ValidationFailed(
            "Escalate after 0 to 365 days overdue.", code="invalid_days", field="escalate_after_days"
        )
    out["no_response"] = require_choice(values.get("no_response") or NoResponse.FLAG, NoResponse, "no_response")
    out["justification"] = require_choice(
        values.get("justification") or JustificationRule.REVOKE, JustificationRule, "justification"
    )
    bulk = values.get("bulk_risks") or []
    if not isinstance(bulk, list) or any(r not in Risk.values for r in bulk):
        raise ValidationFailed(
            f"Bulk decisions: risk levels among {', '.join(Risk.values)}.", code="invalid_choice", field="bulk_risks"
        )
    out["bulk_risks"] = sorted(set(bulk), key=Risk.values.index)
    return out


def _settings_context(campaign: Campaign) -> dict[str, Any]:
    return {
        "subjects": campaign.subjects,
        "filters": {
            "resource": campaign.filter_resource.name if campaign.filter_resource else None,
            "min_sensitivity": campaign.filter_min_sensitivity or None,
            "department": campaign.filter_department or None,
            "unused_days": campaign.filter_unused_days,
        },
        "reviewer_rule": campaign.reviewer_rule,
        "named_reviewer": campaign.named_reviewer_id,
        "fallback_reviewer": campaign.fallback_reviewer_id,
        "duration_days": campaign.duration_days,
        "recurrence": campaign.recurrence,
        "cron": campaign.cron,
        "reminder_days": campaign.reminder_days,
        "escalate_after_days": campaign.escalate_after_days,
        "no_response": campaign.no_response,
        "justification": campaign.justification,
        "bulk_risks": campaign.bulk_risks,
    }


# --- Create, edit, preview ----------------------------------------------------------------------


@transaction.atomic
def campaign_create(*, actor: Actor, **values: Any) -> Campaign:
    """A draft campaign: nothing is generated until it is launched."""
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"Unknown settings: {', '.join(sorted(unknown))}.", code="invalid")
    clean = _clean(values)
    campaign = Campaign.objects.create(created_by=actor.label, created_by_user_id=user_id_of(actor), **clean)
    audit_append(
        actor=actor, action="campaign.create", target=campaign_ref(campaign), context=_settings_context(campaign)
    )
    return campaign


@transaction.atomic
def campaign_update(*, actor: Actor, campaign: Campaign, **values: Any) -> Campaign:
    """Change a draft's settings (a launched campaign's are its evidence and stay as launched)."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.is_standing:
        # A standing campaign runs for good: who reviews it and how reviewers are chased may change.
        fixed = set(values) - set(STANDING_EDITABLE)
        if fixed:
            raise Conflict(f"A standing campaign's {', '.join(sorted(fixed))} cannot change.", code="campaign_standing")
    elif campaign.status != CampaignStatus.DRAFT:
        raise Conflict("Only a draft campaign can be edited.", code="campaign_not_draft")
    unknown = set(values) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"Unknown settings: {', '.join(sorted(unknown))}.", code="invalid")
    current = {name: getattr(campaign, name) for name in EDITABLE}
    if campaign.is_standing:
        current["subjects"] = [Subject.AGENT]  # not used by standing campaigns; satisfies the check
    clean = _clean({**current, **values})
    if campaign.is_standing:
        clean = {name: clean[name] for name in STANDING_EDITABLE}
    for name, value in clean.items():
        setattr(campaign, name, value)
    campaign.save()
    audit_append(
        actor=actor, action="campaign.update", target=campaign_ref(campaign), context=_settings_context(campaign)
    )
    return campaign


@dataclass(frozen=True, slots=True)
class PreviewRow:
    reviewer: Human | None
    items: int
    high_risk: int
    recommend_revoke: int
    rerouted: int


@dataclass(frozen=True, slots=True)
class Preview:
    total: int
    rows: list[PreviewRow]
    # Items separation of duties moved to the fallback (or left unassigned).
    rerouted: int
    unassigned: int


def campaign_preview(campaign: Campaign) -> Preview:
    """What a launch would open now, per reviewer; writes nothing."""
    per: Counter[int | None] = Counter()
    high: Counter[int | None] = Counter()
    revoke: Counter[int | None] = Counter()
    sod: Counter[int | None] = Counter()
    for draft in drafts(campaign, Context.load()):
        assert draft.route is not None
        who = draft.route.reviewer_id
        per[who] += 1
        high[who] += draft.risk in (Risk.HIGH, Risk.CRITICAL)
        revoke[who] += draft.advice.recommendation == "revoke"
        sod[who] += draft.route.sod
    humans = Human.objects.in_bulk([h for h in per if h is not None])
    rows = [PreviewRow(humans.get(h) if h else None, n, high[h], revoke[h], sod[h]) for h, n in per.most_common()]
    return Preview(sum(per.values()), rows, sum(sod.values()), per[None])


# --- Launch and generation ----------------------------------------------------------------------


def _enqueue_generation(campaign_id: int) -> None:
    from reviews import tasks

    try:
        tasks.generate_items.delay(campaign_id)
    except Exception:  # the broker is down: the beat's catch-up (tasks.generate_pending) picks it up
        log.warning("could not enqueue item generation for campaign %s", campaign_id, exc_info=True)


@transaction.atomic
def campaign_launch(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Activate a draft: due in ``duration_days``; its items are generated in the background right after
    (the campaign page shows the progress). A recurring campaign schedules its next occurrence."""
    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != CampaignStatus.DRAFT or campaign.is_standing:
        raise Conflict(f"The campaign is {campaign.status}; only a draft can be launched.", code="campaign_not_draft")
    now = timezone.now()
    campaign.status = CampaignStatus.ACTIVE
    campaign.launched_at = now
    campaign.due_at = now + timedelta(days=campaign.duration_days)
    if campaign.recurrence != Recurrence.NONE and campaign.series_id is None:
        campaign.next_launch_at = next_occurrence(campaign.recurrence, campaign.cron, now)
    campaign.save()
    audit_append(
        actor=actor,
        action="campaign.launch",
        target=campaign_ref(campaign),
        context={"due_at": campaign.due_at, "next_launch_at": campaign.next_launch_at, **_settings_context(campaign)},
    )
    campaign_id = campaign.pk
    transaction.on_commit(lambda: _enqueue_generation(campaign_id))
    return campaign


def _claim(campaign_id: int, now: datetime) -> bool:
    stale = now - CLAIM_TIMEOUT
    return (
        Campaign.objects.filter(pk=campaign_id, status=CampaignStatus.ACTIVE, generated_at__isnull=True)
        .filter(Q(generation_claimed_at__isnull=True) | Q(generation_claimed_at__lt=stale))
        .update(generation_claimed_at=now)
        == 1
    )


# The items table's columns a new item sets, in COPY order (the rest are empty until it is decided).
_ITEM_COLUMNS = (
    "id", "campaign_id", "kind", "subject_key", "agent_id", "grant_id", "delegation_id", "key_id",
    "drift_event_id", "access_request_id", "label", "scopes", "reviewer_id", "routing", "risk", "risk_score",
    "blast_radius", "queue_key", "recommendation", "recommendation_reason", "created_at", "due_at",
    "reminders_sent", "status", "decided_by", "justification", "bulk", "applied",
)  # fmt: skip
_COPY_ITEMS = f"COPY reviews_reviewitem ({', '.join(_ITEM_COLUMNS)}) FROM STDIN"
_ITEM_IDS = "SELECT nextval(pg_get_serial_sequence('reviews_reviewitem', 'id')) FROM generate_series(1, %s)"


def _row(
    item_id: int | None, draft: Draft, campaign_id: int, due_at: datetime, now: datetime, *, scopes: Any
) -> tuple[Any, ...]:
    """One new item's values in ``_ITEM_COLUMNS`` order; ``scopes`` as the caller's driver wants the JSON."""
    assert draft.route is not None
    return (
        item_id, campaign_id, draft.kind, draft.subject_key, draft.agent_id, draft.grant_id, draft.delegation_id,
        draft.key_id, draft.drift_event_id, draft.access_request_id, draft.label[:300], scopes,
        draft.route.reviewer_id, draft.route.routing, draft.risk, draft.risk_score, draft.blast_radius,
        queue_key(draft.risk_score, draft.blast_radius, due_at, item_id or 0), draft.advice.recommendation,
        draft.advice.reason[:300], now, due_at, 0, ItemStatus.PENDING, "", "", False, "",
)  # fmt: skip


def _opened_event(item_id: int, draft: Draft, campaign_id: int, due_at: datetime, actor: Actor) -> PendingEvent:
    assert draft.route is not None
    return PendingEvent(
        actor=actor,
        action="review.item.open",
        target=Target(type="reviewitem", id=str(item_id), label=draft.label[:200]),
        context={
            "campaign": campaign_id,
            "kind": draft.kind,
            "subject": draft.subject_key,
            "agent": draft.agent_id,
            "reviewer": draft.route.reviewer_id,
            "routing": draft.route.routing,
            "risk": draft.risk,
            "recommendation": draft.advice.recommendation,
            "recommendation_reason": draft.advice.reason,
            "due_at": due_at.isoformat(),
        },
    )


def insert_items(drafts: list[Draft], campaign: Campaign, due: dict[str, datetime], actor: Actor) -> list[int]:
    """Open ``drafts`` as items of ``campaign`` (due at ``due[subject_key]``), each with its audit event,
    in a constant number of statements inside the caller's transaction; the new items' ids.

    On PostgreSQL the rows go in by COPY with ids drawn from the sequence first (the events name them),
    which is what lets a 100,000-item launch run at a useful fraction of a bare INSERT … SELECT."""
    now = timezone.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_ITEM_IDS, [len(drafts)])
            ids = [row[0] for row in cursor.fetchall()]
            with cursor.copy(_COPY_ITEMS) as copy:
                for item_id, draft in zip(ids, drafts, strict=True):
                    copy.write_row(
                        _row(item_id, draft, campaign.pk, due[draft.subject_key], now, scopes=json.dumps(draft.scopes))
                    )
    else:
        made = ReviewItem.objects.bulk_create(
            [
                ReviewItem(
                    **dict(
                        zip(
                            _ITEM_COLUMNS[1:],
                            _row(None, d, campaign.pk, due[d.subject_key], now, scopes=d.scopes)[1:],
                            strict=True,
                        )
                    )
                )
                for d in drafts
            ]
        )
        for item in made:  # its key ends with its id, known only now
            item.queue_key = queue_key(item.risk_score, item.blast_radius, item.due_at, item.pk)
        ReviewItem.objects.bulk_update(made, ["queue_key"])
        ids = [item.pk for item in made]
    audit_append_many(
        [_opened_event(i, d, campaign.pk, due[d.subject_key], actor) for i, d in zip(ids, drafts, strict=True)],
        returning=False,
    )
    return ids


def campaign_generate(*, campaign_id: int, chunk: int = GENERATION_CHUNK) -> int:
    """Open a launched campaign's items, ``chunk`` at a time, each chunk in its own transaction with its
    audit events and the progress figure. Resumable: items already open are skipped, so a worker killed
    mid-way (or the beat's catch-up) finishes the job without duplicates. Returns the items opened."""
    now = timezone.now()
    if not _claim(campaign_id, now):
        return 0
    campaign = Campaign.objects.select_related("filter_resource").get(pk=campaign_id)
    assert campaign.due_at is not None
    actor = Actor.system(f"launch of campaign {campaign.pk}")
    existing = set(ReviewItem.objects.filter(campaign=campaign).values_list("subject_key", flat=True))
    pending = [d for d in drafts(campaign, Context.load(now=now)) if d.subject_key not in existing]
    Campaign.objects.filter(pk=campaign.pk).update(items_expected=len(existing) + len(pending))
    opened = 0
    for start in range(0, len(pending), chunk):
        with transaction.atomic():
            if connection.vendor == "postgresql":
                # A chunk's commit need not wait for its WAL flush: a crash can lose only the last chunks,
                # items and events together (one transaction), and the rerun that the stale claim allows
                # opens them again. Every other write keeps the server's synchronous commit.
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit TO OFF")
            batch = pending[start : start + chunk]
            items = insert_items(batch, campaign, dict.fromkeys((d.subject_key for d in batch), campaign.due_at), actor)
            opened += len(items)
            Campaign.objects.filter(pk=campaign.pk).update(
                items_generated=F("items_generated") + len(items), generation_claimed_at=timezone.now()
            )
    with transaction.atomic():
        total = len(existing) + opened
        Campaign.objects.filter(pk=campaign.pk).update(items_generated=total, generated_at=timezone.now())
        audit_append(actor=actor, action="campaign.generated", target=campaign_ref(campaign), context={"items": total})
        notify_reviewers(
            campaign,
            NotificationKind.ASSIGNED,
            ReviewItem.objects.filter(campaign=campaign, status=ItemStatus.PENDING),
            subject=f"{campaign.name}: access to review",
            body="{items} items await your review in {campaign}, due {due}.",
        )
    return opened


# --- Close --------------------------------------------------------------------------------------


@transaction.atomic
def campaign_close(*, actor: Actor, campaign: Campaign) -> Campaign:
    """Close an active campaign: every undecided item gets the no-response outcome — revoked (applied
    through the governance services, like a reviewer's revoke), kept, or kept and flagged."""
    from reviews.services.items import apply_revoke, decided_event

    campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
    if campaign.status != CampaignStatus.ACTIVE or campaign.is_standing:
        raise Conflict(
            f"The campaign is {campaign.status}; only an active one can be closed.", code="campaign_not_active"
        )
    if campaign.generating:
        raise Conflict("Its items are still being generated; close it once they are.", code="campaign_generating")
    now = timezone.now()
    outcome = campaign.no_response
    outcomes: dict[str, str] = {NoResponse.REVOKE: ItemStatus.REVOKED, NoResponse.KEEP: ItemStatus.KEPT}
    status = outcomes.get(outcome, ItemStatus.FLAGGED)
    undecided = list(
        ReviewItem.objects.select_for_update(of=("self",))
        .filter(campaign=campaign, status=ItemStatus.PENDING)
        .select_related("agent", "grant__resource", "delegation", "key", "drift_event", "access_request")
        .order_by("id")
    )
    closer = Actor.system(f"no response in campaign {campaign.pk}")
    for item in undecided:
        item.status = status
        item.decided_at = now
        item.decided_by = f"no response ({outcome})"
        if status == ItemStatus.REVOKED:
            item.applied = apply_revoke(item, closer, reason=f"no response in campaign {campaign.name}")
            item.applied_at = now
    ReviewItem.objects.bulk_update(undecided, ["status", "decided_at", "decided_by", "applied", "applied_at"])
    audit_append_many([decided_event(item, closer) for item in undecided])
    campaign.status = CampaignStatus.CLOSED
    campaign.closed_at = now
    campaign.closed_by = actor.label
    campaign.save(update_fields=["status", "closed_at", "closed_by"])
    audit_append(
        actor=actor,
        action="campaign.close",
        target=campaign_ref(campaign),
        context={"no_response": outcome, "undecided": len(undecided)},
    )
    return campaign


# --- Recurrence ---------------------------------------------------------------------------------


def _occurrence_name(series: Campaign, at: datetime) -> str:
    if series.recurrence == Recurrence.QUARTERLY:
        return f"{series.name} — {at.year} Q{(at.month - 1) // 3 + 1}"
    if series.recurrence == Recurrence.MONTHLY:
        return f"{series.name} — {at:%Y-%m}"
    return f"{series.name} — {at:%Y-%m-%d %H:%M}"


def campaign_launch_due(*, now: datetime | None = None) -> list[Campaign]:
    """Launch the next occurrence of every recurring campaign that is due. Each is claimed by moving its
    ``next_launch_at`` on with a conditional update, so two beats (or a retry) launch it once."""
    now = now or timezone.now()
    launched: list[Campaign] = []
    due = Campaign.objects.filter(
        kind=CampaignKind.CAMPAIGN,
        series__isnull=True,
        status__in=(CampaignStatus.ACTIVE, CampaignStatus.CLOSED),
        next_launch_at__lte=now,
    ).exclude(recurrence=Recurrence.NONE)
    for series in due:
        scheduled = series.next_launch_at
        assert scheduled is not None
        following = next_occurrence(series.recurrence, series.cron, max(scheduled, now))
        with transaction.atomic():
            if Campaign.objects.filter(pk=series.pk, next_launch_at=scheduled).update(next_launch_at=following) != 1:
                continue  # another beat claimed it
            actor = Actor.system("recurring campaign")
            values = {name: getattr(series, name) for name in EDITABLE}
            values["name"] = _occurrence_name(series, scheduled)[:200]
            values["recurrence"] = Recurrence.NONE
            values["cron"] = ""
            occurrence = campaign_create(actor=actor, **values)
            occurrence.series = series
            occurrence.save(update_fields=["series"])
            launched.append(campaign_launch(actor=actor, campaign=occurrence))
    return launched


# --- Evidence exports ---------------------------------------------------------------------------


@transaction.atomic
def campaign_export_logged(*, actor: Actor, campaign: Campaign, fmt: str, items: int) -> None:
    """Record that someone took a campaign's evidence away (a report download), before it is sent."""
    audit_append(
        actor=actor, action="campaign.export", target=campaign_ref(campaign), context={"format": fmt, "items": items}
    )
