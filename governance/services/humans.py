"""Humans: created by an admin (later by SCIM), suspended, reactivated, marked as having left."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance.models import (
    Human,
    HumanStatus,
)
from governance.services._rules import (
    require_choice,
    require_text,
)


@transaction.atomic
def human_create(
    *,
    actor: Actor,
    email: str,
    name: str,
    department: str = "",
    title: str = "",
    manager: Human | None = None,
    external_id: str | None = None,
    user: User | None = None,
) -> Human:
    email = require_text(email, "email", max_length=254, label="Email").lower()
    try:
        validate_email(email)
    except DjangoValidationError:
        raise ValidationFailed("Enter a valid email address.", code="invalid_email", field="email") from None
    name = require_text(name, "name", max_length=200, label="Name")
    if Human.objects.filter(email=email).exists():
        raise Conflict(f"A human with email {email} already exists.", code="duplicate_email", field="email")
    if external_id and Human.objects.filter(external_id=external_id).exists():
        raise Conflict("That external id is already in use.", code="duplicate_external_id", field="external_id")
    human = Human.objects.create(
        email=email,
        name=name,
        department=department.strip()[:120],
        title=title.strip()[:120],
        manager=manager,
        external_id=external_id or None,
        user=user,
    )
    audit_append(
        actor=actor,
        action="human.create",
        target=Target.of(human),
        context={"email": email, "department": human.department, "manager": manager.pk if manager else None},
    )
    return human


@transaction.atomic
def human_set_status(*, actor: Actor, human: Human, status: str, reason: str = "") -> Human:
    """Suspend, reactivate, or mark a human as having left. Their delegations stop being usable at
    once (the check reads the root human's status); the offboarding issue adds the cascade."""
    require_choice(status, HumanStatus, "status")
    human = Human.objects.select_for_update().get(pk=human.pk)
    if human.status == status:
        return human
    previous = human.status
    human.status = status
    human.updated_at = timezone.now()
    human.save(update_fields=["status", "updated_at"])
    audit_append(
        actor=actor,
        action=f"human.{status}",
        target=Target.of(human),
        context={"from": previous, "to": status, "reason": reason},
    )
    return human
