"""Humans: created by an admin or by SCIM, updated, suspended, reactivated, marked as having left."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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
    human.updated_at = max(timezone.now(), human.updated_at + timedelta(microseconds=1))
    human.save(update_fields=["status", "updated_at"])
    audit_append(
        actor=actor,
        action=f"human.{status}",
        target=Target.of(human),
        context={"from": previous, "to": status, "reason": reason},
    )
    return human


_UNSET: Any = object()


@transaction.atomic
def human_update(
    *,
    actor: Actor,
    human: Human,
    name: str | None = None,
    email: str | None = None,
    department: str | None = None,
    title: str | None = None,
    manager: Human | None = _UNSET,
    external_id: str | None = _UNSET,
) -> Human:
    """Change who a human is and where they sit: one ``human.update`` event with each changed field as
    ``[old, new]``. A field left out is kept; ``manager=None`` and ``external_id=None`` clear them.

    The manager is what reviews route by (a sponsor's manager reviews, inherits a leaver's agents) and
    the department what campaigns filter on, so both take effect for the next routing or launch. A
    manager chain that would come back to this human is refused: routing walks it upwards."""
    human = Human.objects.select_for_update().get(pk=human.pk)
    changes: dict[str, list[Any]] = {}
    if name is not None:
        name = require_text(name, "name", max_length=200, label="Name")
        if name != human.name:
            changes["name"] = [human.name, name]
            human.name = name
    if email is not None:
        email = require_text(email, "email", max_length=254, label="Email").lower()
        try:
            validate_email(email)
        except DjangoValidationError:
            raise ValidationFailed("Enter a valid email address.", code="invalid_email", field="email") from None
        if email != human.email:
            if Human.objects.filter(email=email).exclude(pk=human.pk).exists():
                raise Conflict(f"A human with email {email} already exists.", code="duplicate_email", field="email")
            changes["email"] = [human.email, email]
            human.email = email
    if department is not None and department.strip()[:120] != human.department:
        changes["department"] = [human.department, department.strip()[:120]]
        human.department = department.strip()[:120]
    if title is not None and title.strip()[:120] != human.title:
        changes["title"] = [human.title, title.strip()[:120]]
        human.title = title.strip()[:120]
    if manager is not _UNSET:
        manager_id = manager.pk if manager is not None else None
        if manager_id != human.manager_id:
            if manager is not None:
                _refuse_manager_loop(human, manager)
            changes["manager"] = [human.manager_id, manager_id]
            human.manager = manager
    if external_id is not _UNSET:
        external_id = (external_id or "").strip() or None
        if external_id != human.external_id:
            if external_id and Human.objects.filter(external_id=external_id).exclude(pk=human.pk).exists():
                raise Conflict("That external id is already in use.", code="duplicate_external_id", field="external_id")
            if external_id and len(external_id) > 200:
                raise ValidationFailed("The external id is longer than 200 characters.", code="too_long")
            changes["external_id"] = [human.external_id, external_id]
            human.external_id = external_id
    if not changes:
        return human
    # Strictly later than the last change, even within one clock tick: updated_at is what a change
    # is noticed by (SCIM's lastModified, caches).
    human.updated_at = max(timezone.now(), human.updated_at + timedelta(microseconds=1))
    human.save()
    audit_append(actor=actor, action="human.update", target=Target.of(human), context={"changes": changes})
    return human


def _refuse_manager_loop(human: Human, manager: Human) -> None:
    """Walk up from the new manager; meeting ``human`` means the chain would loop."""
    seen: set[int] = set()
    current: int | None = manager.pk
    while current is not None and current not in seen:
        if current == human.pk:
            raise ValidationFailed(
                f"{manager.name} reports to {human.name}, directly or further up: managers may not loop.",
                code="manager_loop",
                field="manager",
            )
        seen.add(current)
        current = Human.objects.filter(pk=current).values_list("manager_id", flat=True).first()
