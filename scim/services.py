"""SCIM provisioning's state changes: clients (create, revoke), and the users and groups an identity
provider pushes, each through governance's services with the client as the audit actor.

A user is a ``governance.Human`` plus its ``ScimUser`` row (what SCIM carries beyond governance). The
effects an IdP asks for are governance's: ``active: false`` or a DELETE runs the leaver flow at once
(``human_offboard``: delegations rooted at them revoked, their agents moved to their manager or
suspended); only an explicit ``active: true`` brings a suspended human or a leaver back
(``human_set_status``): a PUT or PATCH that leaves ``active`` out changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.services import Actor, Target, audit_append
from console.errors import Conflict, ValidationFailed
from governance import credentials
from governance import services as gov
from governance.models import Human, HumanStatus
from scim.models import ScimClient, ScimGroup, ScimUser

CREDENTIAL_KIND = "cs"


def client_actor(client: ScimClient) -> Actor:
    """The audit actor of every change a SCIM client makes."""
    return Actor(kind="system", label=f"scim: {client.name}", id=f"scimclient:{client.pk}")


# --- Clients --------------------------------------------------------------------------------------


@transaction.atomic
def scim_client_create(*, actor: Actor, name: str) -> tuple[ScimClient, str]:
    """A new SCIM client; returns it with its bearer secret ``cs_<prefix>_<secret>``, never shown again."""
    name = (name or "").strip()
    if not name:
        raise ValidationFailed("Name the client (e.g. the identity provider).", code="required", field="name")
    if len(name) > 120:
        raise ValidationFailed("The name is longer than 120 characters.", code="too_long", field="name")
    new = credentials.generate(CREDENTIAL_KIND)
    client = ScimClient.objects.create(name=name, prefix=new.prefix, hashed=new.hashed, created_by=actor.label[:200])
    audit_append(
        actor=actor,
        action="scimclient.create",
        target=Target(type="scimclient", id=str(client.pk), label=f"{client.name} {client.display}"),
        context={"name": client.name, "prefix": client.prefix},
    )
    return client, new.full


@transaction.atomic
def scim_client_revoke(*, actor: Actor, client: ScimClient, reason: str) -> ScimClient:
    """Revoke a client: its next request is refused (401)."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why: the reason goes into the audit log.", code="reason_required", field="reason")
    client = ScimClient.objects.select_for_update().get(pk=client.pk)
    if client.revoked_at is not None:
        return client
    client.revoked_at = timezone.now()
    client.revoked_by = actor.label[:200]
    client.revoked_reason = reason[:2000]
    client.save(update_fields=["revoked_at", "revoked_by", "revoked_reason"])
    audit_append(
        actor=actor,
        action="scimclient.revoke",
        target=Target(type="scimclient", id=str(client.pk), label=f"{client.name} {client.display}"),
        context={"prefix": client.prefix, "reason": client.revoked_reason},
    )
    return client


# --- Users ----------------------------------------------------------------------------------------

UNSET: Any = object()


@dataclass(slots=True)
class UserFields:
    """A user as the IdP describes it, already mapped to Custos's fields (``scim.representation``).

    ``manager`` is UNSET when the request says nothing of it, None to clear it."""

    user_name: str
    email: str
    name: str
    display_name: str = ""
    formatted_name: str = ""
    given_name: str = ""
    family_name: str = ""
    emails: list[dict[str, Any]] = field(default_factory=list)
    title: str = ""
    department: str = ""
    manager: Human | None = UNSET
    external_id: str | None = None
    # None: the request says nothing of it (a PUT or PATCH leaves the status as it is).
    active: bool | None = True


def _user_name_key(user_name: str) -> str:
    return user_name.strip().casefold()


def _refuse_taken_user_name(user_name: str, *, human: Human | None) -> None:
    taken = ScimUser.objects.filter(user_name_key=_user_name_key(user_name))
    # A console-made human (no ScimUser row) answers to its email as userName.
    others = Human.objects.filter(email=user_name.strip().lower(), scim__isnull=True)
    if human is not None:
        taken = taken.exclude(human=human)
        others = others.exclude(pk=human.pk)
    if taken.exists() or others.exists():
        raise Conflict(f"userName {user_name} is already in use.", code="uniqueness", field="userName")


@transaction.atomic
def scim_user_create(*, client: ScimClient, fields: UserFields) -> Human:
    actor = client_actor(client)
    if len(fields.user_name) > 254:
        raise ValidationFailed("userName is longer than 254 characters.", code="too_long", field="userName")
    _refuse_taken_user_name(fields.user_name, human=None)
    human = gov.human_create(
        actor=actor,
        email=fields.email,
        name=fields.name,
        department=fields.department,
        title=fields.title,
        manager=fields.manager if fields.manager is not UNSET else None,
        external_id=fields.external_id,
    )
    ScimUser.objects.create(
        human=human,
        user_name=fields.user_name.strip(),
        user_name_key=_user_name_key(fields.user_name),
        display_name=fields.display_name,
        formatted_name=fields.formatted_name,
        given_name=fields.given_name,
        family_name=fields.family_name,
        emails=fields.emails,
    )
    if fields.active is False:
        # Provisioned as inactive: nothing to cut yet, but they are not an active human either.
        human = gov.human_set_status(
            actor=actor, human=human, status=HumanStatus.SUSPENDED, reason=f"provisioned inactive by {actor.label}"
        )
    return human


@transaction.atomic
def scim_user_replace(*, client: ScimClient, human: Human, fields: UserFields) -> Human:
    """Make the human what ``fields`` says (PUT, and PATCH once the operations are applied)."""
    actor = client_actor(client)
    human = Human.objects.select_for_update().get(pk=human.pk)
    if len(fields.user_name) > 254:
        raise ValidationFailed("userName is longer than 254 characters.", code="too_long", field="userName")
    _refuse_taken_user_name(fields.user_name, human=human)
    changes: dict[str, Any] = {
        "name": fields.name,
        "email": fields.email,
        "department": fields.department,
        "title": fields.title,
        "external_id": fields.external_id,
    }
    if fields.manager is not UNSET:
        changes["manager"] = fields.manager
    human = gov.human_update(actor=actor, human=human, **changes)
    profile, _ = ScimUser.objects.select_for_update().get_or_create(
        human=human,
        defaults={"user_name": fields.user_name.strip(), "user_name_key": _user_name_key(fields.user_name)},
    )
    profile_values = {
        "user_name": fields.user_name.strip(),
        "user_name_key": _user_name_key(fields.user_name),
        "display_name": fields.display_name,
        "formatted_name": fields.formatted_name,
        "given_name": fields.given_name,
        "family_name": fields.family_name,
        "emails": fields.emails,
    }
    profile_changes = {
        name: [getattr(profile, name), value]
        for name, value in profile_values.items()
        if getattr(profile, name) != value
    }
    profile_changes.pop("user_name_key", None)
    if profile_changes:
        for name, value in profile_values.items():
            setattr(profile, name, value)
        profile.updated_at = timezone.now()
        profile.save()
        audit_append(
            actor=actor, action="scimuser.update", target=Target.of(human), context={"changes": profile_changes}
        )
    if fields.active is None:
        # Saying nothing of active changes nothing: above all, it never brings back a human who left.
        return human
    return _set_active(actor=actor, human=human, active=fields.active)


def _set_active(*, actor: Actor, human: Human, active: bool) -> Human:
    if active and human.status != HumanStatus.ACTIVE:
        return gov.human_set_status(
            actor=actor, human=human, status=HumanStatus.ACTIVE, reason=f"reactivated by {actor.label}"
        )
    if not active and human.status != HumanStatus.LEFT:
        # The identity provider says they are gone: the leaver flow, at once.
        gov.human_offboard(actor=actor, human=human, reason=f"deactivated by {actor.label}")
        human.refresh_from_db()
    return human


@transaction.atomic
def scim_user_delete(*, client: ScimClient, human: Human) -> None:
    """The IdP deletes the user: they leave (the leaver flow) and are gone from SCIM and its groups; the
    human stays in Custos, status ``left``, for the audit trail."""
    actor = client_actor(client)
    human = Human.objects.select_for_update().get(pk=human.pk)
    if human.status != HumanStatus.LEFT:
        gov.human_offboard(actor=actor, human=human, reason=f"deleted by {actor.label}")
    now = timezone.now()
    profile, _ = ScimUser.objects.get_or_create(
        human=human, defaults={"user_name": human.email, "user_name_key": f"{_user_name_key(human.email)}"}
    )
    # The userName is free again for whoever the IdP provisions next (a rehire is a new user there too).
    profile.deleted_at = now
    profile.user_name_key = f"deleted:{human.pk}:{profile.user_name_key}"[:254]
    profile.save(update_fields=["deleted_at", "user_name_key"])
    groups = list(ScimGroup.objects.select_for_update().filter(members=human).order_by("pk"))
    for group in groups:
        group.members.remove(human)
        ScimGroup.objects.filter(pk=group.pk).update(version=F("version") + 1, updated_at=now)
    audit_append(
        actor=actor,
        action="scimuser.delete",
        target=Target.of(human),
        context={"groups": [g.pk for g in groups]},
    )


# --- Groups ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class GroupFields:
    display_name: str
    external_id: str | None = None
    members: list[Human] = field(default_factory=list)


def _check_group(fields: GroupFields, *, group: ScimGroup | None) -> None:
    if not fields.display_name.strip():
        raise ValidationFailed("displayName is required.", code="required", field="displayName")
    if len(fields.display_name) > 200:
        raise ValidationFailed("displayName is longer than 200 characters.", code="too_long", field="displayName")
    if fields.external_id:
        taken = ScimGroup.objects.filter(external_id=fields.external_id)
        if group is not None:
            taken = taken.exclude(pk=group.pk)
        if taken.exists():
            raise Conflict("That externalId is already in use.", code="uniqueness", field="externalId")


@transaction.atomic
def scim_group_create(*, client: ScimClient, fields: GroupFields) -> ScimGroup:
    _check_group(fields, group=None)
    group = ScimGroup.objects.create(display_name=fields.display_name.strip(), external_id=fields.external_id or None)
    group.members.set(fields.members)
    audit_append(
        actor=client_actor(client),
        action="scimgroup.create",
        target=Target.of(group),
        context={"display_name": group.display_name, "members": sorted(h.pk for h in fields.members)},
    )
    return group


@transaction.atomic
def scim_group_replace(*, client: ScimClient, group: ScimGroup, fields: GroupFields) -> ScimGroup:
    group = ScimGroup.objects.select_for_update().get(pk=group.pk)
    _check_group(fields, group=group)
    changes: dict[str, Any] = {}
    display_name = fields.display_name.strip()
    if display_name != group.display_name:
        changes["display_name"] = [group.display_name, display_name]
        group.display_name = display_name
    external_id = fields.external_id or None
    if external_id != group.external_id:
        changes["external_id"] = [group.external_id, external_id]
        group.external_id = external_id
    before = set(group.members.values_list("pk", flat=True))
    after = {h.pk for h in fields.members}
    if before != after:
        changes["members"] = {"added": sorted(after - before), "removed": sorted(before - after)}
        group.members.set(fields.members)
    if not changes:
        return group
    group.version += 1
    group.updated_at = timezone.now()
    group.save()
    audit_append(
        actor=client_actor(client), action="scimgroup.update", target=Target.of(group), context={"changes": changes}
    )
    return group


@transaction.atomic
def scim_group_delete(*, client: ScimClient, group: ScimGroup) -> None:
    group = ScimGroup.objects.select_for_update().get(pk=group.pk)
    target = Target.of(group)
    members = sorted(group.members.values_list("pk", flat=True))
    group.delete()
    audit_append(actor=client_actor(client), action="scimgroup.delete", target=target, context={"members": members})
