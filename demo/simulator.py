"""Live agent traffic against a running Custos, through its real HTTP endpoints (``simulate_agents``).

A handful of the organisation's agents get fresh short-lived keys (audited like any other key), then
each loops: exchange its delegation for a token, check tool calls with intents, now and then spawn a
sub-agent and delegate part of its access to it, once in a while stray outside its scopes and then ask
for the access it lacked, poll its requests and use what people approve in the console, and rarely
rotate its key. Everything goes through ``custos_client``, the same client an agent would use.

It is paced for people watching the console: checks flow continuously, but drift bursts and access
requests come a few times an hour, with a bounded number of requests waiting at once (``Pace``). Each
request is logged to the ``demo.simulator`` logger (a file under ``make run``); refusals Custos answers
with a 4xx are one line each, never a traceback. The terminal gets a start line and a summary now and then.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from audit.services import Actor
from custos_client import CustosClient, CustosError, Token
from demo.mcp_agents import plan_calls, run_session
from demo.mcp_server import RESOURCE as MCP_RESOURCE
from governance import services
from governance.chain import delegation_usability
from governance.models import Agent, AgentStatus, Delegation, Resource
from governance.selectors import human_held_scopes

log = logging.getLogger("demo.simulator")

INTENTS = {
    "read": ["look up the customer's history", "summarise the open items", "find the latest figures"],
    "write": ["record the outcome of the call", "update the ticket with the fix", "file the weekly report"],
    "send": ["notify the account owner", "reply to the customer"],
    "delete": ["remove a duplicate record"],
    "approve": ["approve a routine refund"],
}
SIMULATOR = Actor.system("agent simulator")
# Refusals that mean the agent's own key or delegation is gone (revoked in the console): back off.
CREDENTIAL_GONE = ("invalid_client", "invalid_grant")


@dataclass(frozen=True, slots=True)
class Pace:
    """How busy the simulated agents are. Checks are continuous; what asks for a person's attention (a
    drift burst raises a drift signal, an access request waits in someone's queue) is rationed."""

    interval: float = 3.0  # mean seconds between two steps of one agent
    drift_per_hour: float = 4.0  # bursts of out-of-scope attempts, across all agents
    requests_per_hour: float = 4.0  # access requests, across all agents
    max_pending: int = 8  # access requests waiting for an answer at once


def may_ask(*, per_hour: float, now: float, last: float | None, pending: int = 0, max_pending: int = 0) -> bool:
    """Whether something rationed to ``per_hour`` may happen at ``now`` (seconds), the last one having
    happened at ``last``; with ``max_pending``, also only while fewer than that are waiting. The first one
    may happen at once, so the console has something to show early."""
    if max_pending and pending >= max_pending:
        return False
    return last is None or now - last >= 3600 / per_hour


class Ration:
    """``may_ask`` shared by the agents' threads: ``take()`` says yes at most ``per_hour`` times an hour."""

    def __init__(self, per_hour: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_hour = per_hour
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def take(self, *, pending: int = 0, max_pending: int = 0) -> bool:
        with self._lock:
            now = self._clock()
            if not may_ask(per_hour=self.per_hour, now=now, last=self._last, pending=pending, max_pending=max_pending):
                return False
            self._last = now
            return True


class Tally:
    """Counts of what the agents did since the last summary."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, what: str, n: int = 1) -> None:
        with self._lock:
            self._counts[what] += n

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        return counts


def summary_line(counts: Counter[str], *, seconds: float, pending: int) -> str:
    """One line for the terminal: what the agents did in the last ``seconds``."""
    checks = counts["allow"] + counts["deny"]
    parts = [f"{checks} checks ({counts['allow']} allowed, {counts['deny']} denied)"]
    if counts["mcp_allow"] or counts["mcp_deny"]:
        parts.append(f"{counts['mcp_allow'] + counts['mcp_deny']} MCP tool calls ({counts['mcp_deny']} refused)")
    if counts["requested"] or pending:
        parts.append(f"{counts['requested']} access requests ({pending} waiting)")
    if counts["spawned"]:
        parts.append(f"{counts['spawned']} sub-agents spawned")
    if counts["rotated"]:
        parts.append(f"{counts['rotated']} keys rotated")
    refused = counts["refused"] + counts["failed"]
    if refused:
        parts.append(f"{refused} errors")
    span = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return f"last {span}: " + ", ".join(parts)


def _one_line(error: BaseException) -> str:
    """The innermost error's message: the MCP client's transport errors come wrapped in task groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return f"{type(error).__name__}: {error}"


@dataclass
class SimAgent:
    agent_id: int
    name: str
    key_id: int
    delegation_id: int
    scopes: list[str]
    out_of_scope: list[str]
    # Held by the human it acts for but not delegated to it: what a person can approve when asked.
    askable: list[str]
    client: CustosClient
    token: Token | None = None
    sub_agents: list[dict[str, Any]] = field(default_factory=list)
    pending: dict[int, float] = field(default_factory=dict)  # its unanswered requests: id -> lapses at
    # Set for an agent working through the demo MCP server: its URI, which its tokens are bound to.
    mcp_url: str = ""


class Simulator:
    def __init__(self, url: str, pace: Pace, clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.pace = pace
        self.clock = clock
        self.tally = Tally()
        self.drift = Ration(pace.drift_per_hour, clock)
        self.requests = Ration(pace.requests_per_hour, clock)
        self.sims: list[SimAgent] = []
        self._request_ttl = settings.CUSTOS_JIT_REQUEST_TTL.total_seconds()
        self._lock = threading.Lock()  # the agents' pending requests, read across threads

    def pending(self) -> int:
        """The simulator's access requests still waiting (an unanswered one lapses after its TTL)."""
        now = self.clock()
        with self._lock:
            return sum(1 for sim in self.sims for lapses in sim.pending.values() if lapses > now)

    def prepare(self, count: int, rng: random.Random) -> list[SimAgent]:
        """Pick top-level agents that hold a usable delegation and give each a fresh key."""
        catalogue = [r.scope(a) for r in Resource.objects.all() for a in r.actions]
        candidates = list(
            Delegation.objects.active()
            .filter(
                parent__isnull=True,
                delegate__status=AgentStatus.ACTIVE,
                delegate__parent__isnull=True,
                max_depth__gte=1,
            )
            .select_related("delegate", "root_human")
            .order_by("id")
        )
        rng.shuffle(candidates)
        seen: set[int] = set()
        for delegation in candidates:
            if len(self.sims) >= count or delegation.delegate_id in seen:
                continue
            if not delegation_usability(delegation).usable:
                continue
            agent: Agent = delegation.delegate
            key, secret = services.agentkey_create(
                actor=SIMULATOR, agent=agent, name="simulator", expires_at=timezone.now() + timedelta(hours=12)
            )
            seen.add(agent.pk)
            self.sims.append(
                SimAgent(
                    agent_id=agent.pk,
                    name=agent.name,
                    key_id=key.pk,
                    delegation_id=delegation.pk,
                    scopes=list(delegation.scopes),
                    out_of_scope=[s for s in catalogue if s not in delegation.scopes][:20],
                    askable=sorted(human_held_scopes(delegation.root_human) - set(delegation.scopes))[:20],
                    client=CustosClient(self.url, agent_key=secret),
                )
            )
        return self.sims

    def prepare_mcp(self, count: int) -> list[SimAgent]:
        """Agents delegated tools of the demo MCP server (``seed_demo --mcp-url``), each with a fresh key:
        they call the server with the ``mcp`` client rather than asking Custos directly."""
        uri = Resource.objects.filter(name=MCP_RESOURCE).values_list("uri", flat=True).first()
        if not uri:
            return []
        prefix = f"{MCP_RESOURCE}:"
        delegations = (
            Delegation.objects.active()
            .filter(parent__isnull=True, delegate__status=AgentStatus.ACTIVE)
            .select_related("delegate")
            .order_by("id")
        )
        added: list[SimAgent] = []
        for delegation in delegations:
            if len(added) >= count:
                break
            tools = [scope for scope in delegation.scopes if scope.startswith(prefix)]
            if not tools or not delegation_usability(delegation).usable:
                continue
            agent: Agent = delegation.delegate
            key, secret = services.agentkey_create(
                actor=SIMULATOR, agent=agent, name="simulator (MCP)", expires_at=timezone.now() + timedelta(hours=12)
            )
            added.append(
                SimAgent(
                    agent_id=agent.pk,
                    name=f"{agent.name} via MCP",
                    key_id=key.pk,
                    delegation_id=delegation.pk,
                    scopes=tools,
                    out_of_scope=[],
                    askable=[],
                    client=CustosClient(self.url, agent_key=secret),
                    mcp_url=uri,
                )
            )
        self.sims.extend(added)
        return added

    # -- the loop -------------------------------------------------------------------------------

    def run(self, sim: SimAgent, rng: random.Random, stop: threading.Event) -> None:
        interval = self.pace.interval
        while not stop.is_set():
            self.step_safely(sim, rng, stop)
            stop.wait(rng.expovariate(1 / interval))

    def step_safely(self, sim: SimAgent, rng: random.Random, stop: threading.Event) -> None:
        """One step; whatever goes wrong is one line in the log, and the agent carries on."""
        try:
            self.step(sim, rng)
        except CustosError as exc:
            sim.token = None
            if exc.status >= 500:
                self.tally.add("failed")
                log.warning("%s: Custos failed: %s %s: %s", sim.name, exc.status, exc.code, exc.detail)
                stop.wait(5)
                return
            # Custos said no (a revoked key, a lapsed delegation, a duplicate request): expected, one line.
            self.tally.add("refused")
            log.info("%s: refused: %s %s: %s", sim.name, exc.status, exc.code, exc.detail)
            if exc.status in (401, 403) and exc.code in CREDENTIAL_GONE:
                stop.wait(self.pace.interval * 10)  # its key or delegation was revoked: back off
        except OSError as exc:
            self.tally.add("failed")
            log.warning("%s: Custos unreachable (%s)", sim.name, exc)
            stop.wait(5)
        except Exception:
            self.tally.add("failed")
            log.exception("%s: step failed", sim.name)  # a bug: the traceback goes to the log, not the terminal
            stop.wait(self.pace.interval * 5)

    def step(self, sim: SimAgent, rng: random.Random) -> None:
        if sim.mcp_url:
            self.mcp_step(sim, rng)
            return
        if sim.token is None or sim.token.expired:
            sim.token = sim.client.exchange_delegation(sim.delegation_id)
        session = f"{rng.getrandbits(48):012x}"
        # Each kind of step has its own band of the roll; a step that cannot happen now (rationed, nothing
        # to poll, enough sub-agents) is an ordinary one, never another kind's.
        roll = rng.random()
        if roll < 0.05 and sim.out_of_scope and self.drift.take():
            self.stray(sim, rng, session)
        elif 0.05 <= roll < 0.15 and sim.pending:
            self.poll(sim, rng, session)
        elif 0.15 <= roll < 0.20 and len(sim.sub_agents) < 2 and sim.scopes:
            self.spawn(sim, rng)
        elif 0.20 <= roll < 0.201:
            # About hourly, its own key renewed: the old one keeps working for a minute while the new one
            # takes over.
            sim.key_id = sim.client.rotate_key(sim.key_id, overlap_seconds=60).id
            self.tally.add("rotated")
            log.info("%s: rotated its key", sim.name)
        elif 0.201 <= roll < 0.45 and sim.sub_agents:
            self.sub_agent_step(sim, rng, session)
        else:
            for _ in range(rng.randint(1, 3)):
                self.check(sim, sim.token.access_token, rng.choice(sim.scopes), rng, session)

    def mcp_step(self, sim: SimAgent, rng: random.Random) -> None:
        """One MCP session on the demo server: list the tools, work a ticket through them."""
        if sim.token is None or sim.token.expired:
            sim.token = sim.client.exchange_delegation(sim.delegation_id, audience=sim.mcp_url)
        try:
            calls = plan_calls(rng, stray=rng.random() < 0.2 and self.drift.take())
            listed, outcomes = run_session(sim.mcp_url, sim.token.access_token, calls)
        except Exception as exc:  # the server down, a transport error: one line, as for Custos unreachable
            sim.token = None
            self.tally.add("failed")
            log.warning("%s: MCP server at %s failed: %s", sim.name, sim.mcp_url, _one_line(exc))
            return
        log.info("%s: MCP session, tools listed: %s", sim.name, " ".join(listed) or "none")
        for outcome in outcomes:
            self.tally.add("mcp_allow" if outcome.allowed else "mcp_deny")
            verdict = "ran" if outcome.allowed else f"refused: {outcome.reason}"
            log.info("%s: MCP %s %s", sim.name, outcome.call.tool, verdict)

    def stray(self, sim: SimAgent, rng: random.Random, session: str) -> None:
        """Drift: the agent strays outside what it was delegated, several times in a row, then asks for
        the access it was refused, as an agent stuck mid-task would (if the ration allows)."""
        assert sim.token is not None
        scope = rng.choice(sim.askable if sim.askable and rng.random() < 0.5 else sim.out_of_scope)
        for _ in range(rng.randint(3, 6)):
            self.check(sim, sim.token.access_token, scope, rng, session, intent="explore other systems")
        if self.requests.take(pending=self.pending(), max_pending=self.pace.max_pending):
            # Mostly for something the human could grant; now and then for what they cannot.
            wanted = scope if scope in sim.askable or not sim.askable or rng.random() < 0.2 else None
            self.request_access(sim, wanted or rng.choice(sim.askable), session)

    def request_access(self, sim: SimAgent, scope: str, session: str) -> None:
        assert sim.token is not None
        try:
            request = sim.client.request_access(
                scope,
                justification="needed to finish the current task",
                intent=f"complete the task that needs {scope}",
                session_id=session,
                duration_seconds=900,
                token=sim.token.access_token,
            )
        except CustosError as exc:
            if exc.code != "duplicate_request":  # already asked and waiting: nothing more to do
                raise
            log.info("%s: already waiting for %s", sim.name, scope)
            return
        with self._lock:
            sim.pending[request.id] = self.clock() + self._request_ttl
        self.tally.add("requested")
        log.info("%s: asked for %s (request %s)", sim.name, scope, request.id)

    def poll(self, sim: SimAgent, rng: random.Random, session: str) -> None:
        """Look at its oldest unanswered request; once a person approved it in the console, use it."""
        request_id = next(iter(sim.pending))
        request = sim.client.access_request(request_id)
        with self._lock:
            lapses = sim.pending.pop(request_id)
            if request.status == "pending" and lapses > self.clock():
                sim.pending[request_id] = lapses  # still waiting: look at the next one next time
                return
        log.info("%s: request %s for %s is %s", sim.name, request_id, request.scope, request.status)
        if request.status == "approved" and request.resulting_delegation is not None:
            granted = sim.client.exchange_delegation(request.resulting_delegation)
            self.check(sim, granted.access_token, request.scope, rng, session, intent="finish the task, as approved")

    def check(
        self,
        sim: SimAgent,
        token: str,
        scope: str,
        rng: random.Random,
        session: str,
        intent: str = "",
        parent: str = "",
        client: CustosClient | None = None,
        who: str = "",
    ) -> str:
        resource, _, action = scope.partition(":")
        request_id = f"{rng.getrandbits(48):012x}"
        decision = (client or sim.client).check(
            action,
            resource,
            token=token,
            intent=intent or rng.choice(INTENTS.get(action, ["do the task"])),
            tool=resource.split(".")[0],
            session_id=session,
            request_id=request_id,
            parent_request_id=parent,
        )
        self.tally.add(decision.decision)
        log.info("%s: %s %s: %s", who or sim.name, decision.decision, scope, decision.reason)
        return request_id

    def spawn(self, sim: SimAgent, rng: random.Random) -> None:
        assert sim.token is not None
        role = rng.choice(["researcher", "summariser", "checker", "drafter"])
        sub = sim.client.spawn_sub_agent(
            f"{sim.name}-{role}-{len(sim.sub_agents) + 1}",
            purpose=f"{role} for {sim.name}",
            token=sim.token.access_token,
        )
        key = sim.client.issue_sub_agent_key(int(sub["id"]), token=sim.token.access_token)
        scopes = rng.sample(sim.scopes, k=max(1, len(sim.scopes) // 2))
        sim.client.delegate(
            token=sim.token.access_token,
            parent_delegation=sim.delegation_id,
            sub_agent_id=int(sub["id"]),
            scopes=scopes,
            expires_in=3600,
            purpose=f"{role} work delegated by {sim.name}",
        )
        sub_client = CustosClient(sim.client.base_url, agent_key=key)
        name = str(sub.get("name", role))
        sim.sub_agents.append({"id": int(sub["id"]), "name": name, "scopes": scopes, "client": sub_client})
        self.tally.add("spawned")
        log.info("%s: spawned sub-agent %s with %s", sim.name, name, " ".join(scopes))

    def sub_agent_step(self, sim: SimAgent, rng: random.Random, session: str) -> None:
        assert sim.token is not None
        sub = rng.choice(sim.sub_agents)
        client: CustosClient = sub["client"]
        try:
            token = client.exchange_parent_token(sim.token.access_token)
        except CustosError as exc:
            if exc.code not in CREDENTIAL_GONE:
                raise
            # Its delegation or key has run out (or was revoked in the console): retire it; the parent
            # spawns a fresh one later.
            sim.sub_agents.remove(sub)
            log.info("%s: retired sub-agent %s (%s)", sim.name, sub["name"], exc.code)
            return
        parent_request = self.check(sim, sim.token.access_token, rng.choice(sim.scopes), rng, session)
        for _ in range(rng.randint(1, 3)):
            scope = rng.choice(sub["scopes"])
            self.check(
                sim,
                token.access_token,
                scope,
                rng,
                session,
                intent=rng.choice(INTENTS.get(scope.partition(":")[2], ["help the parent agent"])),
                parent=parent_request,
                client=client,
                who=sub["name"],
            )
