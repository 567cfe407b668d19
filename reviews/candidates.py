"""What a campaign reviews, as plain drafts of items: read in a few queries, routed and advised in memory.

``drafts(campaign, org, now)`` yields one ``Draft`` per thing to review (an agent, one of its grants,
delegations or keys) that the campaign's filters keep; ``standing drafts`` for recertification and
micro-reviews are built by ``reviews.services.standing`` with the same ``finish``. A draft becomes a
``ReviewItem`` row as it is; nothing here writes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings

from governance.models import (
    SENSITIVITY_WEIGHT,
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    Grant,
    Resource,
)
from governance.selectors import ScopeUse, scope_usage
from reviews.models import Campaign, ItemKind, Subject
from reviews.recommend import Advice, last_use_advice, risk_of, scopes_advice
from reviews.routing import Org, Route

# How far back recorded use is read for recommendations and the unused filter.
USAGE_WINDOW_DAYS = 90


@dataclass
class Draft:
    kind: str
    subject_key: str
    agent_id: int
    label: str
    scopes: list[str] = field(default_factory=list)
    grant_id: int | None = None
    delegation_id: int | None = None
    key_id: int | None = None
    drift_event_id: int | None = None
    access_request_id: int | None = None
    # Who granted or made the access under review (separation of duties), as human ids.
    made_by: list[int | None] = field(default_factory=list)
    resource_owner_id: int | None = None
    advice: Advice = field(default_factory=lambda: Advice("", ""))
    route: Route | None = None
    risk: str = "medium"
    risk_score: int = 0
    blast_radius: int = 0


@dataclass
class Context:
    """What every draft of one launch is computed from, read once."""

    org: Org
    now: datetime
    resources: dict[str, Resource]
    usage: dict[int, dict[str, ScopeUse]]
    # Distinct scopes reachable per agent by its own grants and delegations in force.
    reach: dict[int, set[str]]
    unused_days: int
    _radius: dict[int, int] = field(default_factory=dict)

    @classmethod
    def load(cls, org: Org | None = None, now: datetime | None = None) -> Context:
        from django.utils import timezone

        now = now or timezone.now()
        org = org or Org.load()
        resources = {r.name: r for r in Resource.objects.only("id", "name", "sensitivity", "owner_id")}
        usage: dict[int, dict[str, ScopeUse]] = defaultdict(dict)
        for (agent_id, scope), use in scope_usage(None, now - timedelta(days=USAGE_WINDOW_DAYS)).items():
            usage[agent_id][scope] = use
        reach: dict[int, set[str]] = defaultdict(set)
        for agent_id, name, action in (
            Grant.objects.active(now)
            .filter(holder_agent__isnull=False)
            .values_list("holder_agent_id", "resource__name", "action")
        ):
            reach[agent_id].add(f"{name}:{action}")
        for agent_id, scopes in Delegation.objects.active(now).values_list("delegate_id", "scopes"):
            reach[agent_id].update(scopes)
        return cls(org, now, resources, usage, reach, settings.CUSTOS_REVIEW_UNUSED_DAYS)

    def blast_radius(self, agent_id: int) -> int:
        """What a misuse could touch (SPEC §8): the scopes reachable by the agent and every sub-agent below
        it, each weighted by its resource's sensitivity (1, 3, 9, 27; a resource no longer in the
        catalogue counts as medium), as ``governance.blast`` weighs them."""
        radius = self._radius.get(agent_id)
        if radius is None:
            scopes: set[str] = set()
            for member in [agent_id, *self.org.descendants(agent_id)]:
                scopes |= self.reach.get(member, set())
            weights = [
                SENSITIVITY_WEIGHT[r.sensitivity] if (r := self.resources.get(s.partition(":")[0])) else 3
                for s in scopes
            ]
            radius = self._radius[agent_id] = sum(weights)
        return radius

    def sensitivities(self, scopes: list[str]) -> list[str]:
        out = []
        for scope in scopes:
            resource = self.resources.get(scope.partition(":")[0])
            if resource is not None:
                out.append(resource.sensitivity)
        return out

    def most_sensitive_owner(self, scopes: list[str]) -> int | None:
        best: Resource | None = None
        for scope in scopes:
            resource = self.resources.get(scope.partition(":")[0])
            if resource is not None and (
                best is None or SENSITIVITY_WEIGHT[resource.sensitivity] > SENSITIVITY_WEIGHT[best.sensitivity]
            ):
                best = resource
        return best.owner_id if best is not None else None

    def finish(self, draft: Draft, *, rule: str, fallback_id: int | None, named_id: int | None) -> Draft:
        """Route, advise (when the caller has not) and weigh a draft."""
        draft.route = self.org.route(
            rule,
            draft.agent_id,
            fallback_id=fallback_id,
            resource_owner_id=draft.resource_owner_id,
            named_id=named_id,
            also_conflicted=draft.made_by,
        )
        draft.blast_radius = self.blast_radius(draft.agent_id)
        node = self.org.agents.get(draft.agent_id)
        draft.risk, draft.risk_score = risk_of(
            draft.kind,
            agent_tier=node.risk_tier if node else "medium",
            sensitivities=self.sensitivities(draft.scopes or sorted(self.reach.get(draft.agent_id, ()))),
            recommendation=draft.advice.recommendation,
            blast_radius=draft.blast_radius,
        )
        return draft


def _keep(ctx: Context, campaign: Campaign, agent_id: int, scopes: list[str], last_use: datetime | None) -> bool:
    """The campaign's filters, applied to one candidate."""
    node = ctx.org.agents.get(agent_id)
    if node is None or node.status != AgentStatus.ACTIVE:
        return False
    if campaign.filter_department:
        sponsor = ctx.org.humans.get(node.sponsor_id)
        if sponsor is None or sponsor.department.lower() != campaign.filter_department.lower():
            return False
    if campaign.filter_resource_id is not None:
        name = campaign.filter_resource.name if campaign.filter_resource else ""
        if not any(s.partition(":")[0] == name for s in scopes):
            return False
    if campaign.filter_min_sensitivity:
        floor = SENSITIVITY_WEIGHT.get(campaign.filter_min_sensitivity, 0)
        if not any(SENSITIVITY_WEIGHT.get(s, 0) >= floor for s in ctx.sensitivities(scopes)):
            return False
    unused_days = campaign.filter_unused_days
    return unused_days is None or last_use is None or last_use < ctx.now - timedelta(days=unused_days)


def _last_use(ctx: Context, agent_id: int, scopes: list[str]) -> datetime | None:
    uses = [ctx.usage.get(agent_id, {}).get(s) for s in scopes]
    moments = [u.last_at for u in uses if u is not None]
    return max(moments) if moments else None


def drafts(campaign: Campaign, ctx: Context) -> Iterator[Draft]:
    """Every item a launch of ``campaign`` opens, routed, advised and weighed, in a stable order."""
    subjects = set(campaign.subjects)
    now, unused = ctx.now, ctx.unused_days
    finish = partial(
        ctx.finish,
        rule=campaign.reviewer_rule,
        fallback_id=campaign.fallback_reviewer_id,
        named_id=campaign.named_reviewer_id,
    )
    if Subject.AGENT in subjects:
        last_activity = dict(Agent.objects.values_list("id", "last_activity_at"))
        # The column is written in batches (governance.usage); the recorded checks are the record.
        for agent_id, uses in ctx.usage.items():
            checked = max(u.last_at for u in uses.values())
            if last_activity.get(agent_id) is None or last_activity[agent_id] < checked:  # type: ignore[operator]
                last_activity[agent_id] = checked
        for agent_id in sorted(ctx.org.agents):
            scopes = sorted(ctx.reach.get(agent_id, ()))
            if not _keep(ctx, campaign, agent_id, scopes, last_activity.get(agent_id)):
                continue
            node = ctx.org.agents[agent_id]
            draft = Draft(
                kind=ItemKind.AGENT,
                subject_key=f"agent:{agent_id}",
                agent_id=agent_id,
                label=node.name,
                advice=last_use_advice("agent", last_activity.get(agent_id), now=now, unused_days=unused),
            )
            yield finish(draft)
    if Subject.GRANT in subjects:
        grants = (
            Grant.objects.active(now)
            .filter(holder_agent__isnull=False)
            .values_list(
                "id", "holder_agent_id", "resource__name", "action", "resource__owner_id", "granted_by_user_id"
            )
            .order_by("id")
        )
        for grant_id, agent_id, name, action, owner_id, by_user in grants.iterator(chunk_size=5000):
            scope = f"{name}:{action}"
            if not _keep(ctx, campaign, agent_id, [scope], _last_use(ctx, agent_id, [scope])):
                continue
            draft = Draft(
                kind=ItemKind.GRANT,
                subject_key=f"grant:{grant_id}",
                agent_id=agent_id,
                label=f"{ctx.org.agents[agent_id].name} → {scope}",
                scopes=[scope],
                grant_id=grant_id,
                made_by=[ctx.org.human_of_user(by_user)],
                resource_owner_id=owner_id,
                advice=scopes_advice([scope], ctx.usage.get(agent_id, {}), now=now, unused_days=unused),
            )
            yield finish(draft)
    if Subject.DELEGATION in subjects:
        links = (
            Delegation.objects.active(now)
            .values_list("id", "delegate_id", "root_human_id", "scopes", "created_by_user_id")
            .order_by("id")
        )
        for link_id, agent_id, root_id, scopes, by_user in links.iterator(chunk_size=5000):
            if not _keep(ctx, campaign, agent_id, scopes, _last_use(ctx, agent_id, scopes)):
                continue
            root = ctx.org.humans.get(root_id)
            draft = Draft(
                kind=ItemKind.DELEGATION,
                subject_key=f"delegation:{link_id}",
                agent_id=agent_id,
                label=f"#{link_id} {root.name if root else '?'} → {ctx.org.agents[agent_id].name}",
                scopes=list(scopes),
                delegation_id=link_id,
                made_by=[root_id, ctx.org.human_of_user(by_user)],
                resource_owner_id=ctx.most_sensitive_owner(scopes),
                advice=scopes_advice(scopes, ctx.usage.get(agent_id, {}), now=now, unused_days=unused),
            )
            yield finish(draft)
    if Subject.KEY in subjects:
        keys = AgentKey.objects.active(now).values_list("id", "agent_id", "prefix", "last_used_at").order_by("id")
        for key_id, agent_id, prefix, last_used in keys.iterator(chunk_size=5000):
            scopes = sorted(ctx.reach.get(agent_id, ()))
            if not _keep(ctx, campaign, agent_id, scopes, last_used):
                continue
            draft = Draft(
                kind=ItemKind.KEY,
                subject_key=f"key:{key_id}",
                agent_id=agent_id,
                label=f"{ctx.org.agents[agent_id].name} ck_{prefix}_…",
                key_id=key_id,
                advice=last_use_advice("key", last_used, now=now, unused_days=unused),
            )
            yield finish(draft)
