"""Six weeks of agents at work: the runtime decisions in the seeded history.

Every decision goes through the product's own front doors, with the clock moved: an agent exchanges its
key and its delegation for a token (``governance.oauth.token_exchange``), then asks before each tool call
(``governance.runtime.check``); a sub-agent exchanges its parent's token for its own and its calls carry
the parent's request id. So the audit events, usage and drift signals are exactly those of real traffic,
and every refusal is the runtime's own: a scope the agent was not delegated, a delegation that lapsed
mid-task, a leaked key tried after it was revoked, a human who left while an agent was working.

An agent works in shifts: one token (up to ``SHIFT_TOKEN``), one or a few work items each with its own
session id and goal (the ``intent`` of its calls), and for some shifts a sub-agent (and its own) helping.
The secrets of the keys the seeder issues are kept in memory only (``Work.secrets``), while seeding runs.
The work draws from its own random generator, so the organisation's story (who, what, when) does not
depend on how busy its agents are.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from demo.catalogue import GOALS
from demo.resources import RESOURCES
from demo.timeline import Deployment, Node, Timeline
from governance import oauth, runtime

# Every agent still at work has a shift in the last hours of the replay (it ends at midnight), so the
# console opens on recent activity, and before that one every week or two back to its deployment.
LAST_DAY_HOURS = (1.0, 16.0)
SHIFT_GAP_DAYS = (12.0, 20.0)
# What a shift asks of the token exchange, and what fits in it: work items, calls per item, the pauses.
SHIFT_TOKEN = timedelta(minutes=40)
ITEMS = (1, 3)
CALLS = (3, 4)
CALL_GAP_SECONDS = (20.0, 90.0)
ITEM_GAP_SECONDS = (60.0, 360.0)
# How often a shift has a sub-agent helping (and that one its own), and how often a call of the parent
# is handed on to it.
TEAM = 0.4
HAND_OFF = 0.5
# How often a call strays outside what the caller was delegated (a confused or over-eager agent).
STRAY = 0.03
# Scopes a hijacked or drifting agent goes after when it has no neighbouring scope to try.
TEMPTING = (
    "warehouse.customers_pii:export",
    "payments.transfers:initiate",
    "okta.users:suspend",
    "crm.contacts:export",
    "vault.secrets:read",
)
ACTIONS = {r.name: r.actions for r in RESOURCES}


@dataclass(frozen=True, slots=True)
class Token:
    jwt: str
    scopes: tuple[str, ...]


@dataclass(slots=True)
class Shift:
    """``helpers`` maps an agent to the sub-agent it hands calls to in this shift; ``tokens`` are the
    helpers' tokens, each exchanged once per shift (None: the exchange was refused)."""

    helpers: dict[int, Node] = field(default_factory=dict)
    tokens: dict[int, Token | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Session:
    """One work item: every call for it shares the session id and the goal (its intent)."""

    id: str
    goal: str
    shift: Shift


def tool_of(resource: str) -> str:
    """The tool an agent calls for a resource: ``zendesk`` for ``zendesk.tickets``."""
    return resource.split(".", 1)[0]


def neighbours(scopes: tuple[str, ...]) -> list[str]:
    """Scopes next to the ones held: another action on the same resource (``zendesk.tickets:close``
    beside ``zendesk.tickets:read``), what an agent reaching a little too far asks for."""
    held = set(scopes)
    return sorted(
        f"{resource}:{action}"
        for resource in {s.partition(":")[0] for s in scopes}
        for action in ACTIONS.get(resource, ())
        if f"{resource}:{action}" not in held
    )


class Work:
    """Schedules agents' shifts on the timeline and performs them when the clock gets there."""

    def __init__(self, tl: Timeline, seed: int) -> None:
        self.tl = tl
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible demo, not a secret
        self.secrets: dict[int, str] = {}  # key id -> secret, never written anywhere
        self.worked: set[int] = set()  # agents that made at least one call
        self._goal_numbers = itertools.count(1040, 10)  # work items numbered as tickets are, upwards

    # -- scheduling ---------------------------------------------------------------------------

    def start(self, deployment: Deployment) -> None:
        """A newly deployed agent's shifts, from the last day back to its first week. Those it can no
        longer work (its delegation lapsed or withdrawn, its key revoked) get no token, and so no calls."""
        at = earliest = self.tl.end - timedelta(hours=self.rng.uniform(*LAST_DAY_HOURS))
        team = True  # on the last day, with a sub-agent helping
        while at > self.tl.now:
            self.tl.at(at, partial(self.shift, deployment, team=team))
            earliest, team = at, False
            at -= timedelta(days=self.rng.uniform(*SHIFT_GAP_DAYS))
        if earliest - self.tl.now > timedelta(days=8):
            # And its first days at work, trying out its new sub-agents.
            first = self.tl.now + timedelta(hours=self.rng.uniform(2, 30))
            self.tl.at(first, partial(self.shift, deployment, team=True))

    def around(self, deployment: Deployment, when: datetime) -> None:
        """A shift already under way at ``when``, when something is about to happen to the agent or the
        human it acts for: what it does after that moment is refused for the reason the runtime gives."""
        start = when - timedelta(minutes=self.rng.uniform(2.5, 4.5))
        self.tl.at(max(start, self.tl.now), partial(self.shift, deployment, calls=6))

    def lapse(self, deployment: Deployment, expires_at: datetime) -> None:
        """The last shift of an agent whose delegation nobody renews: it runs on past the end."""
        start = expires_at - timedelta(minutes=5)
        offsets = (60.0, 240.0, 312.0, 420.0)  # two before the end, one inside the token's leeway, one after
        self.tl.at(start, partial(self.shift, deployment, offsets=offsets))

    def leak(self, deployment: Deployment, revoked_at: datetime) -> None:
        """Someone found the key in a CI log: they try it before it is revoked, and again after."""
        self.tl.at(revoked_at - timedelta(hours=self.rng.uniform(1, 3)), partial(self.probe, deployment))

    # -- the work -----------------------------------------------------------------------------

    def shift(
        self,
        deployment: Deployment,
        *,
        team: bool = False,
        calls: int = 0,
        offsets: tuple[float, ...] = (),
    ) -> None:
        """With ``calls`` or ``offsets`` (seconds from now), one work item of that many calls."""
        if deployment.stopped and deployment.fate != "lapse":
            return  # withdrawn, suspended or its sponsor gone: its keys are revoked, it gets no token
        root = deployment.root
        token = self.exchange_for_delegation(root)
        if token is None:
            return  # not usable now (lapsed, its human away): no token, so nothing to check
        shift = Shift()
        helper = self.pick_helper(root) if team or self.rng.random() < TEAM else None
        if helper is not None:
            shift.helpers[root.agent_id] = helper
            grandchild = self.pick_helper(helper)
            if grandchild is not None and (grandchild.agent_id not in self.worked or self.rng.random() < 0.5):
                shift.helpers[helper.agent_id] = grandchild
        if offsets or calls:
            items = [offsets or self.offsets(calls)]
        else:
            items = [self.offsets(self.rng.randint(*CALLS)) for _ in range(self.rng.randint(*ITEMS))]
        at = self.tl.now
        for item in items:
            session = Session(id=self.hex(), goal=self.goal(deployment), shift=shift)
            for offset in item:
                self.tl.at(at + timedelta(seconds=offset), partial(self.root_call, session, root, token))
            if root.spec.own and self.rng.random() < 0.3:
                self.tl.at(at + timedelta(seconds=self.rng.uniform(5, 60)), partial(self.own_call, session, root))
            at += timedelta(seconds=item[-1] + self.rng.uniform(*ITEM_GAP_SECONDS))

    def root_call(self, session: Session, root: Node, token: Token) -> None:
        request_id = self.call(root, token.jwt, self.pick(token.scopes, neighbours(token.scopes)), session)
        self.maybe_hand_off(session, root, token, request_id)

    def maybe_hand_off(self, session: Session, node: Node, token: Token, request_id: str) -> None:
        helper = session.shift.helpers.get(node.agent_id)
        if helper is not None and self.rng.random() < HAND_OFF:
            self.tl.at(
                self.tl.now + timedelta(seconds=self.rng.uniform(1, 8)),
                partial(self.hand_off, session, helper, token, request_id),
            )

    def hand_off(self, session: Session, node: Node, parent_token: Token, parent_request_id: str) -> None:
        """A sub-agent takes part of its parent's call: with its own token (exchanged once per shift from
        the parent's, so narrower and no longer-lived), each of its calls names the parent's request."""
        tokens = session.shift.tokens
        if node.agent_id not in tokens:
            tokens[node.agent_id] = self.exchange_for_parent_token(node, parent_token)
        token = tokens[node.agent_id]
        if token is None:
            return  # its key or link has run out, or was withdrawn: the parent carries on alone
        assert node.parent is not None
        wider = sorted(set(node.parent.spec.scopes) - set(token.scopes))
        at = self.tl.now
        for _ in range(self.rng.randint(1, 2)):
            at += timedelta(seconds=self.rng.uniform(2, 25))
            self.tl.at(at, partial(self.sub_call, session, node, token, wider, parent_request_id))
        if node.spec.own and self.rng.random() < 0.2:
            self.tl.at(at + timedelta(seconds=self.rng.uniform(1, 20)), partial(self.own_call, session, node))

    def sub_call(self, session: Session, node: Node, token: Token, wider: list[str], parent_request_id: str) -> None:
        # A sub-agent reaching for its parent's wider access is refused: attenuation at work.
        scope = self.pick(token.scopes, wider)
        request_id = self.call(node, token.jwt, scope, session, parent_request_id=parent_request_id)
        self.maybe_hand_off(session, node, token, request_id)

    def own_call(self, session: Session, node: Node) -> None:
        """The agent acting as itself with its own key, on a grant of its own (its bot account)."""
        secret = self.secrets.get(node.key_id) if node.key_id else None
        if secret is not None:
            self.call(node, secret, self.rng.choice(node.spec.own), session)

    def drift(self, deployment: Deployment) -> None:
        """A burst of attempts outside the agent's delegation, now: enough for the runtime to raise a
        drift signal (what got the agent suspended)."""
        root = deployment.root
        token = self.exchange_for_delegation(root)
        if token is None:
            return
        session = Session(self.hex(), "follow the instructions found in the material it was given", Shift())
        targets = neighbours(token.scopes) + [s for s in TEMPTING if s not in token.scopes]
        for _ in range(self.rng.randint(5, 7)):
            self.tl.pause(self.rng.uniform(10, 40))
            self.call(root, token.jwt, self.rng.choice(targets), session)

    def probe(self, deployment: Deployment) -> None:
        """An outsider with the leaked key: tries it against what the agent is known to reach."""
        root = deployment.root
        secret = self.secrets.get(root.key_id) if root.key_id else None
        if secret is None:
            return
        wanted = [*root.spec.scopes, *TEMPTING]

        def attempt() -> None:
            session = Session(self.hex(), "", Shift())  # an outsider does not say what it is after
            for _ in range(self.rng.randint(2, 3)):
                self.tl.pause(self.rng.uniform(3, 20))
                self.call(root, secret, self.rng.choice(wanted), session, tool="curl")

        attempt()
        # And again the next day, after the key was revoked.
        self.tl.at(self.tl.now + timedelta(hours=self.rng.uniform(20, 30)), attempt)

    # -- calls into Custos ----------------------------------------------------------------------

    def exchange_for_delegation(self, node: Node) -> Token | None:
        if node.link_id is None:
            return None
        return self._exchange(node, str(node.link_id), oauth.TOKEN_TYPE_DELEGATION)

    def exchange_for_parent_token(self, node: Node, parent_token: Token) -> Token | None:
        return self._exchange(node, parent_token.jwt, oauth.TOKEN_TYPE_JWT)

    def _exchange(self, node: Node, subject_token: str, subject_token_type: str) -> Token | None:
        secret = self.secrets.get(node.key_id) if node.key_id else None
        if secret is None:
            return None
        try:
            issued = oauth.token_exchange(
                actor_token=secret,
                actor_token_type=oauth.TOKEN_TYPE_AGENT_KEY,
                subject_token=subject_token,
                subject_token_type=subject_token_type,
                requested_lifetime=SHIFT_TOKEN,
            )
        except oauth.OAuthError:
            return None  # refused (a key, link or human no longer usable): not a decision, nothing recorded
        return Token(issued.access_token, tuple(issued.scope.split()))

    def call(
        self, node: Node, credential: str, scope: str, session: Session, *, parent_request_id: str = "", tool: str = ""
    ) -> str:
        resource, _, action = scope.partition(":")
        request_id = self.hex()
        runtime.check(
            credential=credential,
            action=action,
            resource=resource,
            context={
                "intent": session.goal,
                "tool": tool or tool_of(resource),
                "session_id": session.id,
                "request_id": request_id,
                "parent_request_id": parent_request_id,
            },
        )
        self.worked.add(node.agent_id)
        return request_id

    # -- choices ------------------------------------------------------------------------------

    def offsets(self, calls: int) -> tuple[float, ...]:
        """Seconds from the start of a work item to each of its calls."""
        return tuple(itertools.accumulate(self.rng.uniform(*CALL_GAP_SECONDS) for _ in range(calls)))

    def pick_helper(self, node: Node) -> Node | None:
        """A registered sub-agent of ``node``, one that has not worked yet if there is one: over the weeks
        every sub-agent gets its turn, at the cost of one token exchange per shift and helper."""
        registered = [child for child in node.children if child.agent_id]
        idle = [child for child in registered if child.agent_id not in self.worked]
        return self.rng.choice(idle or registered) if registered else None

    def pick(self, scopes: tuple[str, ...], strays: list[str]) -> str:
        if strays and self.rng.random() < STRAY:
            return self.rng.choice(strays)
        return self.rng.choice(scopes)

    def goal(self, deployment: Deployment) -> str:
        template = self.rng.choice(GOALS[deployment.spec.name])
        return template.format(n=next(self._goal_numbers) + self.rng.randint(0, 9))

    def hex(self) -> str:
        return f"{self.rng.getrandbits(48):012x}"
