"""The admin's htmx forms: each change goes through its service and is audited; a refusal from the
service comes back inline, on the field it concerns, with status 422 and nothing written."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from governance.models import Agent, AgentKey, AgentStatus, Delegation, DelegationStatus, Grant
from tests import factories

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
SECRET_RE = re.compile(r"ck_[a-z0-9]{8,16}_[A-Za-z0-9]+")


def _local(delta: timedelta) -> str:
    return (timezone.now() + delta).strftime("%Y-%m-%dT%H:%M")


def _last_seq() -> int:
    return AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _events_since(seq: int) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(id__gt=seq).order_by("id"))


@pytest.fixture
def admin(admin_user: User) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def chain() -> dict[str, Any]:
    """A human holding read and write on a resource, delegating both to an agent that has a sub-agent
    (max_depth 1), and a second, narrower delegation (read only) to the same agent."""
    human = factories.make_human(name="Dana Delegator")
    resource = factories.make_resource(name="crm.contacts")
    factories.make_grant(human, resource, "read")
    factories.make_grant(human, resource, "write")
    agent = factories.make_agent(sponsor=human, name="crm-helper")
    sub = factories.make_agent(parent=agent, name="crm-helper-fetcher")
    wide = factories.make_delegation(
        agent, [resource.scope("read"), resource.scope("write")], root_human=human, max_depth=1
    )
    narrow = factories.make_delegation(agent, [resource.scope("read")], root_human=human, max_depth=1)
    return {"human": human, "resource": resource, "agent": agent, "sub": sub, "wide": wide, "narrow": narrow}


# --- Agents ---------------------------------------------------------------------------------


def test_an_admin_registers_an_agent_and_is_sent_to_its_page(admin: Client, admin_user: User) -> None:
    sponsor = factories.make_human(name="Sam Sponsor")
    seq = _last_seq()
    response = admin.post(
        reverse("console:agent_create"),
        {"name": "invoice-bot", "purpose": "Reconcile invoices", "sponsor": sponsor.pk, "risk_tier": "high"},
        headers=HTMX,
    )
    agent = Agent.objects.get(name="invoice-bot")
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == reverse("console:agent", args=[agent.pk])
    assert (agent.sponsor, agent.risk_tier, agent.purpose) == (sponsor, "high", "Reconcile invoices")
    [event] = _events_since(seq)
    assert (event.action, event.actor_label, event.target_id) == ("agent.create", admin_user.username, str(agent.pk))


def test_registering_a_sub_agent_without_a_sponsor_inherits_the_parents(admin: Client) -> None:
    parent = factories.make_agent(name="parent-bot")
    admin.post(reverse("console:agent_create"), {"name": "child-bot", "parent": parent.pk, "risk_tier": "low"})
    child = Agent.objects.get(name="child-bot")
    assert (child.parent, child.sponsor_id) == (parent, parent.sponsor_id)


def test_an_agent_without_a_sponsor_is_refused_inline_next_to_the_sponsor_field(admin: Client) -> None:
    seq = _last_seq()
    response = admin.post(reverse("console:agent_create"), {"name": "orphan", "risk_tier": "low"}, headers=HTMX)
    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="agent-form"' in body
    assert "<html" not in body  # only the form fragment, swapped in place
    sponsor_errors = re.search(r'id="id_sponsor_errors">(.*?)</ul>', body, re.S)
    assert sponsor_errors and "needs a sponsor" in sponsor_errors.group(1)
    assert not Agent.objects.filter(name="orphan").exists()
    assert _last_seq() == seq


def test_without_htmx_a_refused_form_comes_back_on_a_page_of_its_own(admin: Client) -> None:
    response = admin.post(reverse("console:agent_create"), {"name": "orphan", "risk_tier": "low"})
    assert response.status_code == 422
    body = response.content.decode()
    assert "<html" in body
    assert "needs a sponsor" in body


def test_suspending_and_reactivating_an_agent_is_audited(admin: Client) -> None:
    agent = factories.make_agent()
    seq = _last_seq()
    admin.post(reverse("console:agent_suspend", args=[agent.pk]), {"reason": "odd traffic"}, headers=HTMX)
    agent.refresh_from_db()
    assert agent.status == AgentStatus.SUSPENDED
    admin.post(reverse("console:agent_reactivate", args=[agent.pk]), headers=HTMX)
    agent.refresh_from_db()
    assert agent.status == AgentStatus.ACTIVE
    assert [e.action for e in _events_since(seq)] == ["agent.suspend", "agent.reactivate"]


# --- Grants ---------------------------------------------------------------------------------


def test_an_admin_grants_an_agent_a_scope_that_expires(admin: Client) -> None:
    agent = factories.make_agent()
    resource = factories.make_resource(name="docs.wiki")
    seq = _last_seq()
    response = admin.post(
        reverse("console:agent_grant_create", args=[agent.pk]),
        {"scope": "docs.wiki:read", "expires_at": _local(timedelta(days=5)), "justification": "onboarding"},
        headers=HTMX,
    )
    assert response.headers["HX-Redirect"] == reverse("console:agent", args=[agent.pk])
    grant = Grant.objects.get(holder_agent=agent)
    assert (grant.resource, grant.action, grant.justification) == (resource, "read", "onboarding")
    # The form sends whole minutes in UTC: the grant ends at the minute asked for, five days out.
    assert grant.expires_at is not None
    assert grant.expires_at.second == 0
    assert abs(grant.expires_at - (timezone.now() + timedelta(days=5))) < timedelta(minutes=2)
    assert [e.action for e in _events_since(seq)] == ["grant.create"]


def test_an_agent_grant_without_expiry_is_refused_inline(admin: Client) -> None:
    agent = factories.make_agent()
    factories.make_resource(name="docs.wiki")
    response = admin.post(
        reverse("console:agent_grant_create", args=[agent.pk]), {"scope": "docs.wiki:read"}, headers=HTMX
    )
    assert response.status_code == 422
    assert re.search(r'id="id_expires_at_errors">.*expiry time is required', response.content.decode(), re.S)
    assert not Grant.objects.filter(holder_agent=agent).exists()


def test_an_admin_grants_a_human_open_ended_access(admin: Client) -> None:
    human = factories.make_human()
    factories.make_resource(name="mail.outbound", actions=("send",))
    response = admin.post(
        reverse("console:human_grant_create", args=[human.pk]), {"scope": "mail.outbound:send"}, headers=HTMX
    )
    assert response.headers["HX-Redirect"] == reverse("console:human", args=[human.pk])
    grant = Grant.objects.get(holder_human=human)
    assert grant.expires_at is None


# --- Delegations ----------------------------------------------------------------------------


def test_a_human_delegates_to_an_agent_from_their_page(admin: Client, chain: dict[str, Any]) -> None:
    other_agent = factories.make_agent(name="another-agent")
    seq = _last_seq()
    response = admin.post(
        reverse("console:human_delegation_create", args=[chain["human"].pk]),
        {
            "delegate": other_agent.pk,
            "scopes": ["crm.contacts:read"],
            "expires_at": _local(timedelta(days=2)),
            "purpose": "Weekly pipeline summary",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    assert response.headers["HX-Redirect"] == reverse("console:human", args=[chain["human"].pk])
    link = Delegation.objects.get(delegate=other_agent)
    assert (link.root_human, link.parent, link.scopes) == (chain["human"], None, ["crm.contacts:read"])
    assert [e.action for e in _events_since(seq)] == ["delegation.create"]


def test_an_agent_delegates_part_of_its_delegation_to_its_sub_agent(admin: Client, chain: dict[str, Any]) -> None:
    seq = _last_seq()
    response = admin.post(
        reverse("console:agent_delegation_create", args=[chain["agent"].pk]),
        {
            "parent": chain["wide"].pk,
            "delegate": chain["sub"].pk,
            "scopes": ["crm.contacts:write"],
            "expires_at": _local(timedelta(hours=3)),
            "purpose": "Fetch contacts to update",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    assert response.headers["HX-Redirect"] == reverse("console:agent", args=[chain["agent"].pk])
    link = Delegation.objects.get(delegate=chain["sub"])
    assert (link.parent, link.root_human, link.scopes) == (chain["wide"], chain["human"], ["crm.contacts:write"])
    [event] = _events_since(seq)
    assert event.action == "delegation.create"
    assert [ref["label"] for ref in event.on_behalf_of] == ["Dana Delegator", "crm-helper"]


def test_a_scope_wider_than_the_parent_is_refused_inline_and_nothing_is_written(
    admin: Client, chain: dict[str, Any]
) -> None:
    seq, links = _last_seq(), Delegation.objects.count()
    response = admin.post(
        reverse("console:agent_delegation_create", args=[chain["agent"].pk]),
        {
            "parent": chain["narrow"].pk,  # read only
            "delegate": chain["sub"].pk,
            "scopes": ["crm.contacts:read", "crm.contacts:write"],
            "expires_at": _local(timedelta(hours=3)),
            "purpose": "Try to widen",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    assert response.status_code == 422
    body = response.content.decode()
    assert 'id="child-form"' in body
    scope_errors = re.search(r'id="id_scopes_errors">(.*?)</ul>', body, re.S)
    assert scope_errors and "Cannot widen the parent" in scope_errors.group(1)
    assert 'value="Try to widen"' in body or "Try to widen</textarea>" in body  # input kept
    assert Delegation.objects.count() == links
    assert _last_seq() == seq


def test_an_expiry_past_the_parents_is_refused_inline(admin: Client, chain: dict[str, Any]) -> None:
    response = admin.post(
        reverse("console:agent_delegation_create", args=[chain["agent"].pk]),
        {
            "parent": chain["wide"].pk,
            "delegate": chain["sub"].pk,
            "scopes": ["crm.contacts:read"],
            "expires_at": _local(timedelta(days=20)),
            "purpose": "Outlive the parent",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    assert response.status_code == 422
    assert re.search(r'id="id_expires_at_errors">.*no later than the parent', response.content.decode(), re.S)
    assert not Delegation.objects.filter(delegate=chain["sub"]).exists()


def test_the_child_form_offers_only_the_agents_own_sub_agents(admin: Client, chain: dict[str, Any]) -> None:
    stranger = factories.make_agent(name="not-a-sub-agent")
    page = admin.get(reverse("console:agent", args=[chain["agent"].pk])).content.decode()
    form = page[page.index('id="child-form"') :]
    form = form[: form.index("</form>")]
    assert f'value="{chain["sub"].pk}"' in form
    assert f'value="{stranger.pk}"' not in form
    response = admin.post(
        reverse("console:agent_delegation_create", args=[chain["agent"].pk]),
        {
            "parent": chain["wide"].pk,
            "delegate": stranger.pk,
            "scopes": ["crm.contacts:read"],
            "expires_at": _local(timedelta(hours=3)),
            "purpose": "Sideways",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    assert response.status_code == 422
    assert not Delegation.objects.filter(delegate=stranger).exists()


def test_revoking_a_delegation_cascades_and_audits_each_link(admin: Client, chain: dict[str, Any]) -> None:
    child = factories.make_delegation(
        chain["sub"], ["crm.contacts:read"], parent=chain["wide"], expires_in=timedelta(hours=2)
    )
    seq = _last_seq()
    admin.post(reverse("console:delegation_revoke", args=[chain["wide"].pk]), {"reason": "done"}, headers=HTMX)
    assert set(Delegation.objects.filter(pk__in=[chain["wide"].pk, child.pk]).values_list("status", flat=True)) == {
        DelegationStatus.REVOKED
    }
    assert [e.target_id for e in _events_since(seq)] == [str(chain["wide"].pk), str(child.pk)]


def test_a_revoke_only_returns_to_a_page_on_this_site(admin: Client, chain: dict[str, Any]) -> None:
    response = admin.post(
        reverse("console:delegation_revoke", args=[chain["narrow"].pk]), {"next": "https://evil.example/"}
    )
    assert response.status_code == 302
    assert response.url == reverse("console:agent", args=[chain["agent"].pk])


# --- Keys -----------------------------------------------------------------------------------


def test_a_new_key_secret_is_shown_once_and_never_again(admin: Client) -> None:
    agent = factories.make_agent(name="key-holder")
    seq = _last_seq()
    response = admin.post(reverse("console:agent_key_create", args=[agent.pk]), {"name": "prod"}, headers=HTMX)
    assert response.status_code == 201
    assert "no-store" in response.headers["Cache-Control"]
    body = response.content.decode()
    secrets_shown = set(SECRET_RE.findall(body))
    assert len(secrets_shown) == 1
    [secret] = secrets_shown
    key = AgentKey.objects.get(agent=agent)
    assert secret.startswith(f"ck_{key.prefix}_")
    assert 'hx-swap-oob="innerHTML"' in body  # the key list refreshes beside the secret
    [event] = _events_since(seq)
    assert event.action == "agentkey.create"
    assert secret not in str(event.context)

    page = admin.get(reverse("console:agent", args=[agent.pk])).content.decode()
    assert key.display in page
    assert secret not in page
    assert secret.split("_")[2] not in page


def test_revoking_a_key_is_audited(admin: Client) -> None:
    agent = factories.make_agent()
    key, _secret = factories.make_key(agent)
    seq = _last_seq()
    response = admin.post(reverse("console:key_revoke", args=[key.pk]), {"reason": "leaked"}, headers=HTMX)
    assert response.headers["HX-Redirect"] == reverse("console:agent", args=[agent.pk])
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert key.revoked_reason == "leaked"
    assert [e.action for e in _events_since(seq)] == ["agentkey.revoke"]


def test_a_key_for_a_suspended_agent_is_refused_inline(admin: Client) -> None:
    agent = factories.make_agent()
    admin.post(reverse("console:agent_suspend", args=[agent.pk]))
    response = admin.post(reverse("console:agent_key_create", args=[agent.pk]), {"name": "x"}, headers=HTMX)
    assert response.status_code == 422
    assert "keys go to active agents" in response.content.decode()
    assert not AgentKey.objects.filter(agent=agent).exists()


# --- Reasons reach the audit log; pages offer only what can apply -----------------------------------


def _reason_of(action: str) -> str:
    return AuditEvent.objects.filter(action=action).order_by("-id").values_list("context__reason", flat=True)[0]


def test_every_console_action_carries_its_reason_to_the_audit_event(admin: Client, chain: dict[str, Any]) -> None:
    agent, human, resource = chain["agent"], chain["human"], chain["resource"]
    key, _secret = factories.make_key(agent)
    grant = factories.make_grant(agent, resource, "read")

    admin.post(reverse("console:delegation_revoke", args=[chain["narrow"].pk]), {"reason": "narrow no longer needed"})
    admin.post(reverse("console:key_revoke", args=[key.pk]), {"reason": "rotated by hand"})
    admin.post(reverse("console:grant_revoke", args=[grant.pk]), {"reason": "project ended"}, headers=HTMX)
    admin.post(reverse("console:agent_suspend", args=[agent.pk]), {"reason": "odd traffic"})
    admin.post(reverse("console:agent_reactivate", args=[agent.pk]), {"reason": "traffic explained"})

    assert _reason_of("delegation.revoke") == "narrow no longer needed"
    assert _reason_of("agentkey.revoke") == "rotated by hand"
    assert _reason_of("grant.revoke") == "project ended"
    assert AuditEvent.objects.filter(action="agent.suspend", target_id=str(agent.pk)).get().context["reason"] == (
        "odd traffic"
    )
    assert _reason_of("agent.reactivate") == "traffic explained"
    grant.refresh_from_db()
    assert grant.status == "revoked" and grant.revoked_reason == "project ended"
    assert human.pk  # the chain's human is untouched by the agent's actions


def test_the_grants_card_offers_revoke_with_a_reason_to_admins_only(
    admin: Client, reviewer_user: User, chain: dict[str, Any]
) -> None:
    grant = factories.make_grant(chain["agent"], chain["resource"], "read")
    url = reverse("console:grant_revoke", args=[grant.pk])
    page = admin.get(reverse("console:agent", args=[chain["agent"].pk])).content.decode()
    assert f'action="{url}"' in page and 'aria-label="Reason for revoking crm.contacts:read"' in page

    auditor = Client()
    auditor.force_login(factories.make_auditor())
    assert f'action="{url}"' not in auditor.get(reverse("console:agent", args=[chain["agent"].pk])).content.decode()
    assert auditor.post(url, {"reason": "x"}).status_code == 403
    assert Grant.objects.get(pk=grant.pk).status == "active"


def _forms_on(client: Client, url: str) -> set[str]:
    return set(re.findall(r'<form[^>]*action="([^"]+)"', client.get(url).content.decode()))


def test_a_suspended_agents_page_offers_only_reactivation_and_the_services_refuse_the_rest(
    admin: Client, chain: dict[str, Any]
) -> None:
    agent, resource = chain["agent"], chain["resource"]
    factories.services.agent_suspend(actor=factories.SYSTEM, agent=agent, reason="test")
    page_url = reverse("console:agent", args=[agent.pk])

    forms = _forms_on(admin, page_url)

    key_url = reverse("console:agent_key_create", args=[agent.pk])
    grant_url = reverse("console:agent_grant_create", args=[agent.pk])
    child_url = reverse("console:agent_delegation_create", args=[agent.pk])
    assert reverse("console:agent_reactivate", args=[agent.pk]) in forms
    assert not {key_url, grant_url, child_url, reverse("console:agent_suspend", args=[agent.pk])} & forms

    seq = _last_seq()
    key = admin.post(key_url, {"name": "ci"}, headers=HTMX)
    grant = admin.post(
        grant_url, {"scope": resource.scope("read"), "expires_at": _local(timedelta(days=1))}, headers=HTMX
    )
    child = admin.post(
        child_url,
        {
            "parent": chain["wide"].pk,
            "delegate": chain["sub"].pk,
            "scopes": [resource.scope("read")],
            "expires_at": _local(timedelta(hours=2)),
            "purpose": "p",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    assert key.status_code == grant.status_code == child.status_code == 422
    assert "keys go to active agents" in key.content.decode()
    assert "grants go to active holders" in grant.content.decode()
    assert _events_since(seq) == []


def test_an_offboarded_agents_page_offers_no_action_and_suspending_it_is_refused(
    admin: Client, chain: dict[str, Any]
) -> None:
    agent = chain["sub"]
    factories.services.agent_offboard(actor=factories.SYSTEM, agent=agent, reason="retired")

    forms = _forms_on(admin, reverse("console:agent", args=[agent.pk]))

    for name in ("agent_suspend", "agent_reactivate", "agent_key_create", "agent_grant_create"):
        assert reverse(f"console:{name}", args=[agent.pk]) not in forms
    response = admin.post(reverse("console:agent_suspend", args=[agent.pk]), {"reason": "x"}, follow=True)
    assert "An offboarded agent cannot change status." in response.content.decode()
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.OFFBOARDED


@pytest.mark.parametrize("status", ["left", "suspended"])
def test_a_human_who_left_or_is_suspended_gets_no_grant_or_delegation_form_and_posting_is_refused(
    admin: Client, chain: dict[str, Any], status: str
) -> None:
    human, resource = chain["human"], chain["resource"]
    factories.services.human_set_status(actor=factories.SYSTEM, human=human, status=status, reason="test")
    other = factories.make_agent()

    forms = _forms_on(admin, reverse("console:human", args=[human.pk]))

    delegate_url = reverse("console:human_delegation_create", args=[human.pk])
    grant_url = reverse("console:human_grant_create", args=[human.pk])
    assert not {delegate_url, grant_url} & forms
    seq = _last_seq()
    delegated = admin.post(
        delegate_url,
        {
            "delegate": other.pk,
            "scopes": [resource.scope("read")],
            "expires_at": _local(timedelta(hours=2)),
            "purpose": "p",
            "max_depth": 0,
        },
        headers=HTMX,
    )
    granted = admin.post(grant_url, {"scope": resource.scope("read")}, headers=HTMX)
    assert delegated.status_code == granted.status_code == 422
    assert f"{human.name} is {status}" in delegated.content.decode()
    assert "grants go to active holders" in granted.content.decode()
    assert _events_since(seq) == []
