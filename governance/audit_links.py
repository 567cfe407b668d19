"""The console pages of the objects governance's audit events name, registered with the audit log's
viewer (``audit.links``) when the app starts."""

from __future__ import annotations

from django.urls import reverse

from audit import links
from audit.models import AuditEvent
from governance import history


def _page(name: str) -> links.TargetPage:
    def page(event: AuditEvent) -> str | None:
        target = event.target_id
        return reverse(name, args=[int(target)]) if target.isascii() and target.isdigit() else None

    return page


def _of_agent_in_context(event: AuditEvent) -> str | None:
    # Keys and tokens are shown on their agent's page.
    agent_id = event.context.get("agent") if isinstance(event.context, dict) else None
    return reverse("console:agent", args=[agent_id]) if type(agent_id) is int and agent_id > 0 else None


def register() -> None:
    links.register("agent", _page("console:agent"))
    links.register("human", _page("console:human"))
    links.register("resource", _page("console:resource"))
    links.register("agentkey", _of_agent_in_context)
    links.register("delegationtoken", _of_agent_in_context)
    links.register("delegation", _page("console:delegation"))
    for target_type in ("apitoken", "grant"):
        links.register(target_type, lambda event: None)
    # "Events about agent 7": the audit browser's ?agent=, ?human= and ?resource= filters.
    links.register_subject("agent", history.agent_events)
    links.register_subject("human", history.human_events)
    links.register_subject("resource", history.resource_events)
