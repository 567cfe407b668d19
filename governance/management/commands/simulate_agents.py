"""Live agent traffic against a running Custos, through its real HTTP endpoints.

A handful of the organisation's agents get fresh short-lived keys (audited like any other key), then
each loops: exchange its delegation for a token, check tool calls with intents, now and then spawn a
sub-agent and delegate part of its access to it, sometimes drift outside its scopes and then ask for the
access it lacked, poll its requests and use what people approve in the console, and once in a while
rotate its key. ``make run`` starts it beside the server so the console shows decisions as they
happen. Everything goes through ``custos_client``, the same client an agent would use.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from audit.services import Actor
from custos_client import CustosClient, CustosError, Token
from governance.models import Agent, AgentStatus, Delegation, Resource
from governance.selectors import delegation_usability, human_held_scopes
from governance.services import agentkey_create

INTENTS = {
    "read": ["look up the customer's history", "summarise the open items", "find the latest figures"],
    "write": ["record the outcome of the call", "update the ticket with the fix", "file the weekly report"],
    "send": ["notify the account owner", "reply to the customer"],
    "delete": ["remove a duplicate record"],
    "approve": ["approve a routine refund"],
}
SIMULATOR = Actor.system("agent simulator")


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
    pending: list[int] = field(default_factory=list)  # ids of its access requests not yet answered
    asked: bool = False


class Command(BaseCommand):
    help = "Simulate agents exchanging tokens, checking tool calls, spawning sub-agents and drifting."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="Where Custos is served.")
        parser.add_argument("--agents", type=int, default=6, help="How many agents to drive.")
        parser.add_argument("--interval", type=float, default=2.0, help="Mean seconds between an agent's steps.")
        parser.add_argument("--duration", type=float, default=0, help="Stop after this many seconds (0: run on).")
        parser.add_argument("--seed", type=int, default=7)

    def handle(self, *args: Any, **options: Any) -> None:
        rng = random.Random(options["seed"])  # noqa: S311 - a simulation, not cryptography
        self._wait_for(options["url"])
        sims = self._prepare(options["url"], options["agents"], rng)
        if not sims:
            self.stderr.write("No agent with a usable delegation to simulate (run manage.py seed_demo first).")
            return
        self.stdout.write(f"simulating {len(sims)} agents against {options['url']}: " + ", ".join(s.name for s in sims))
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=self._run,
                args=(sim, options["interval"], random.Random(rng.random()), stop),  # noqa: S311
                daemon=True,
            )
            for sim in sims
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + options["duration"] if options["duration"] else None
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)

    def _wait_for(self, url: str) -> None:
        import urllib.request

        for _ in range(120):
            try:
                with urllib.request.urlopen(url + "/api/v1/health", timeout=2):  # noqa: S310 - local URL
                    return
            except OSError:
                time.sleep(1)
        raise SystemExit(f"Custos did not answer at {url}")

    def _prepare(self, url: str, count: int, rng: random.Random) -> list[SimAgent]:
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
        sims: list[SimAgent] = []
        seen: set[int] = set()
        for delegation in candidates:
            if len(sims) >= count or delegation.delegate_id in seen:
                continue
            if not delegation_usability(delegation).usable:
                continue
            agent: Agent = delegation.delegate
            key, secret = agentkey_create(
                actor=SIMULATOR, agent=agent, name="simulator", expires_at=timezone.now() + timedelta(hours=12)
            )
            seen.add(agent.pk)
            sims.append(
                SimAgent(
                    agent_id=agent.pk,
                    name=agent.name,
                    key_id=key.pk,
                    delegation_id=delegation.pk,
                    scopes=list(delegation.scopes),
                    out_of_scope=[s for s in catalogue if s not in delegation.scopes][:20],
                    askable=sorted(human_held_scopes(delegation.root_human) - set(delegation.scopes))[:20],
                    client=CustosClient(url, agent_key=secret),
                )
            )
        return sims

    def _run(self, sim: SimAgent, interval: float, rng: random.Random, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self._step(sim, rng)
            except CustosError as exc:
                self.stdout.write(f"{sim.name}: {exc}")
                sim.token = None
                if exc.status in (401, 403) and exc.code in ("invalid_client", "invalid_grant"):
                    stop.wait(interval * 10)  # its key or delegation was revoked: back off
            except OSError as exc:
                self.stdout.write(f"{sim.name}: Custos unreachable ({exc})")
                stop.wait(5)
            stop.wait(rng.expovariate(1 / interval))

    def _step(self, sim: SimAgent, rng: random.Random) -> None:
        if sim.token is None or sim.token.expired:
            sim.token = sim.client.exchange_delegation(sim.delegation_id)
        session = uuid.uuid4().hex[:12]
        roll = rng.random()
        if roll < 0.12 and sim.out_of_scope:
            # Drift: the agent strays outside what it was delegated, several times in a row, and then
            # asks for the access it was refused, as an agent stuck mid-task would (the first time
            # always, so the console has a request to show early; later, half the time).
            scope = rng.choice(sim.askable if sim.askable and rng.random() < 0.5 else sim.out_of_scope)
            for _ in range(rng.randint(3, 6)):
                self._check(sim, sim.token.access_token, scope, rng, session, intent="explore other systems")
            if not sim.asked or rng.random() < 0.5:
                # Mostly for something the human could grant; now and then for what they cannot.
                wanted = scope if scope in sim.askable or not sim.askable or rng.random() < 0.2 else None
                self._request_access(sim, wanted or rng.choice(sim.askable), session)
        elif roll < 0.20 and sim.pending:
            self._poll(sim, rng, session)
        elif roll < 0.28 and len(sim.sub_agents) < 2 and sim.scopes:
            self._spawn(sim, rng)
        elif roll < 0.29:
            # Its own key, renewed: the old one keeps working for a minute while the new one takes over.
            sim.key_id = sim.client.rotate_key(sim.key_id, overlap_seconds=60).id
        elif sim.sub_agents and roll < 0.50:
            self._sub_agent_step(sim, rng, session)
        else:
            for _ in range(rng.randint(1, 3)):
                self._check(sim, sim.token.access_token, rng.choice(sim.scopes), rng, session)

    def _request_access(self, sim: SimAgent, scope: str, session: str) -> None:
        assert sim.token is not None
        sim.asked = True
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
            return
        sim.pending.append(request.id)

    def _poll(self, sim: SimAgent, rng: random.Random, session: str) -> None:
        """Look at one unanswered request; once a person approved it in the console, use it."""
        request = sim.client.access_request(sim.pending[0])
        if request.status == "pending":
            sim.pending.append(sim.pending.pop(0))  # look at the next one next time
            return
        sim.pending.pop(0)
        if request.status == "approved" and request.resulting_delegation is not None:
            granted = sim.client.exchange_delegation(request.resulting_delegation)
            self._check(sim, granted.access_token, request.scope, rng, session, intent="finish the task, as approved")

    def _check(
        self,
        sim: SimAgent,
        token: str,
        scope: str,
        rng: random.Random,
        session: str,
        intent: str = "",
        parent: str = "",
    ) -> str:
        resource, _, action = scope.partition(":")
        request_id = uuid.uuid4().hex[:12]
        sim.client.check(
            action,
            resource,
            token=token,
            intent=intent or rng.choice(INTENTS.get(action, ["do the task"])),
            tool=resource.split(".")[0],
            session_id=session,
            request_id=request_id,
            parent_request_id=parent,
        )
        return request_id

    def _spawn(self, sim: SimAgent, rng: random.Random) -> None:
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
        sim.sub_agents.append({"id": int(sub["id"]), "scopes": scopes, "client": sub_client})

    def _sub_agent_step(self, sim: SimAgent, rng: random.Random, session: str) -> None:
        assert sim.token is not None
        sub = rng.choice(sim.sub_agents)
        client: CustosClient = sub["client"]
        try:
            token = client.exchange_parent_token(sim.token.access_token)
        except CustosError as exc:
            if exc.code not in ("invalid_grant", "invalid_client"):
                raise
            # Its delegation or key has run out (or was revoked in the console): retire it; the parent
            # spawns a fresh one later.
            sim.sub_agents.remove(sub)
            return
        parent_request = self._check(sim, sim.token.access_token, rng.choice(sim.scopes), rng, session)
        for _ in range(rng.randint(1, 3)):
            resource, _, action = rng.choice(sub["scopes"]).partition(":")
            client.check(
                action,
                resource,
                token=token.access_token,
                intent=rng.choice(INTENTS.get(action, ["help the parent agent"])),
                tool=resource.split(".")[0],
                session_id=session,
                request_id=uuid.uuid4().hex[:12],
                parent_request_id=parent_request,
            )
