"""Rotation reminders to sponsors (key hygiene's human half): keys in force that expire soon, are past the
maximum age or are stale, told to the agent's sponsor once per key and reason, grouped into one
notification per sponsor and run. Governance flags the keys (``governance.selectors``); this app owns
notifications, so the reminders live here (reviews may import governance, never the reverse)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.services import Actor, PendingEvent, Target, audit_append_many
from governance.models import AgentKey, AgentStatus, Human, HumanStatus
from governance.selectors import KEY_ROTATE, KEY_STALE, key_flags, stale_keys, unused_days
from reviews.models import KeyReminder, KeyReminderReason, Notification, NotificationKind
from reviews.services.notify import notify_rows

REASONS = (KeyReminderReason.EXPIRING, KeyReminderReason.ROTATE, KeyReminderReason.STALE)
# The hygiene flags are reasons under their own names, so ``key_flags`` answers for both.
assert {KEY_ROTATE, KEY_STALE} <= set(KeyReminderReason.values)


def _reminded(reason: str) -> Exists:
    return Exists(KeyReminder.objects.filter(key=OuterRef("pk"), reason=reason))


def _due(now: datetime, batch_size: int) -> list[AgentKey]:
    """Keys in force with a reason not reminded yet, in one query (each key annotated with which reasons
    were), a sponsor's keys together. Only active agents with an active sponsor: a suspended agent's key
    is refused anyway, and a leaver's agents are re-sponsored first (then their new sponsor is told)."""
    notice_until = now + settings.CUSTOS_KEY_ROTATION_NOTICE
    expiring = Q(expires_at__lte=notice_until)
    # The same definitions as the hygiene flags: older than CUSTOS_KEY_MAX_AGE, and governance's stale keys.
    too_old = Q(created_at__lt=now - settings.CUSTOS_KEY_MAX_AGE)
    stale = Q(pk__in=stale_keys(now).values("pk"))
    pending = (
        (expiring & ~_reminded(KeyReminderReason.EXPIRING))
        | (too_old & ~_reminded(KeyReminderReason.ROTATE))
        | (stale & ~_reminded(KeyReminderReason.STALE))
    )
    return list(
        AgentKey.objects.active(now)
        .filter(agent__status=AgentStatus.ACTIVE, agent__sponsor__status=HumanStatus.ACTIVE)
        .filter(pending)
        .annotate(**{f"reminded_{reason}": _reminded(reason) for reason in REASONS})
        .select_related("agent__sponsor__user")
        .order_by("agent__sponsor_id", "id")[:batch_size]
    )


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def _span(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}{'s' if seconds != size else ''}"
    return f"{seconds} seconds"


def _detail(key: AgentKey, reason: str, now: datetime) -> str:
    if reason == KeyReminderReason.EXPIRING:
        left = key.expires_at - now
        # Rounded, not cut: a key issued for nine days and reminded a minute later has nine days left.
        if left < timedelta(days=1):
            hours = max(1, math.ceil(left / timedelta(hours=1)))
            when = f"in {hours} hour{'s' if hours != 1 else ''}"
        else:
            when = f"in {_days(round(left / timedelta(days=1)))}"
        return f"expires {key.expires_at:%Y-%m-%d %H:%M} UTC ({when})"
    if reason == KeyReminderReason.ROTATE:
        return (
            f"{_days((now - key.created_at).days)} old, past the maximum age of "
            f"{_days(settings.CUSTOS_KEY_MAX_AGE.days)}: rotate it"
        )
    if key.last_used_at is None:
        return f"never used since it was issued {_days(unused_days(key, now))} ago: revoke it if unneeded"
    return f"unused for {_days(unused_days(key, now))}: revoke it if unneeded"


def _reasons(key: AgentKey, now: datetime) -> list[str]:
    """The reasons that apply to ``key`` now and were not reminded yet, in ``REASONS`` order."""
    applies = set(key_flags(key, now))  # KEY_ROTATE, KEY_STALE
    if key.expires_at <= now + settings.CUSTOS_KEY_ROTATION_NOTICE:
        applies.add(KeyReminderReason.EXPIRING)
    return [r for r in REASONS if r in applies and not getattr(key, f"reminded_{r}")]


def _message(sponsor: Human, lines: list[tuple[AgentKey, list[str]]]) -> tuple[str, str]:
    site = settings.CUSTOS_ISSUER.rstrip("/")
    n = len(lines)
    subject = f"{n} agent key{'s' if n != 1 else ''} to rotate or retire"
    which = "these keys of agents you sponsor need" if n != 1 else "this key of an agent you sponsor needs"
    body = [f"{sponsor.name}, {which} attention:", ""]
    for key, details in lines:
        name = f" ({key.name})" if key.name else ""
        body.append(f"- {key.agent.name}: key {key.display}{name} {'; '.join(details)}")
        body.append(f"  {site}{key.agent.get_absolute_url()}")
    body += [
        "",
        "Rotate a key on its agent's page: the new key is shown once, and the old one keeps working for "
        f"{_span(settings.CUSTOS_KEY_ROTATION_OVERLAP)} so the agent can switch. Revoke a key the agent no "
        "longer uses.",
    ]
    return subject[:200], "\n".join(body)


def key_rotation_remind_due(*, now: datetime | None = None, batch_size: int = 1000) -> dict[str, int]:
    """Remind sponsors of their agents' keys due for rotation: expiring within
    ``CUSTOS_KEY_ROTATION_NOTICE``, older than ``CUSTOS_KEY_MAX_AGE`` or unused for
    ``CUSTOS_KEY_STALE_DAYS``. One notification per sponsor per run listing their keys (console and
    email; email only for a sponsor without a console login), one ``key.rotation_remind`` event per
    key, in a constant number of queries. Idempotent: a key is reminded once per reason. At most
    ``batch_size`` keys a call (the task calls again while a batch comes back full)."""
    try:
        return _remind(now or timezone.now(), batch_size)
    except IntegrityError:
        # Another run reminded the same keys at the same moment: its reminders stand, this one's rolled back.
        return {"keys": 0, "reminders": 0, "notifications": 0}


@transaction.atomic
def _remind(now: datetime, batch_size: int) -> dict[str, int]:
    per_sponsor: dict[int, list[tuple[AgentKey, list[str], list[str]]]] = defaultdict(list)
    sponsors: dict[int, Human] = {}
    for key in _due(now, batch_size):
        reasons = _reasons(key, now)
        if not reasons:
            continue  # a reason in SQL's view but not at this instant's (a boundary): next run
        sponsor = key.agent.sponsor
        sponsors[sponsor.pk] = sponsor
        per_sponsor[sponsor.pk].append((key, reasons, [_detail(key, r, now) for r in reasons]))
    if not per_sponsor:
        return {"keys": 0, "reminders": 0, "notifications": 0}

    notes: list[Notification] = []
    for sponsor_id, entries in per_sponsor.items():
        sponsor = sponsors[sponsor_id]
        subject, body = _message(sponsor, [(key, details) for key, _, details in entries])
        # As for reviewers, a console user is emailed at their login's address; when it has none (or
        # there is no login) at the sponsor's own, which every human has.
        login_email = sponsor.user.email if sponsor.user is not None else ""
        notes.append(
            Notification(
                user_id=sponsor.user_id,
                email="" if login_email else sponsor.email,
                kind=NotificationKind.KEY_ROTATION,
                subject=subject,
                body=body,
                items=len(entries),
                created_at=now,
            )
        )
    notify_rows(notes)

    reminders: list[KeyReminder] = []
    events: list[PendingEvent] = []
    actor = Actor.system("key rotation reminders")
    for note, (sponsor_id, entries) in zip(notes, per_sponsor.items(), strict=True):
        for key, reasons, details in entries:
            reminders += [
                KeyReminder(key=key, reason=r, sponsor_id=sponsor_id, notification=note, detail=d[:200], created_at=now)
                for r, d in zip(reasons, details, strict=True)
            ]
            events.append(
                PendingEvent(
                    actor=actor,
                    action="key.rotation_remind",
                    target=Target(type="agentkey", id=str(key.pk), label=f"{key.agent.name} {key.display}"[:200]),
                    context={
                        "agent": key.agent_id,
                        "prefix": key.prefix,
                        "reasons": reasons,
                        "sponsor": sponsor_id,
                        "notification": note.pk,
                        "console_user": note.user_id,
                    },
                )
            )
    # The unique (key, reason) constraint stops a concurrent run here, before anything is committed.
    KeyReminder.objects.bulk_create(reminders)
    audit_append_many(events, returning=False)
    return {"keys": len(events), "reminders": len(reminders), "notifications": len(notes)}
