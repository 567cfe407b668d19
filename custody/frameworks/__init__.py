"""The framework mapping: OWASP Top 10 Non-Human Identities Risks (2025), the identity items of the OWASP
Top 10 for Agentic Applications, and NIST CSF 2.0 PR.AA-01…05. For each item, what Custos does about it
and live evidence from this installation, each figure linked to the list behind it.

The mapping is data (``ITEMS``: id, title, control, evidence function), so it is tested item by item. All
the figures come from ``figures()``: a fixed handful of aggregate queries, whatever the installation's size.
Admins and auditors only (the page reads everything), so nothing here is scoped by viewer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from custody.frameworks import evidence
from custody.frameworks.evidence import Evidence, _days
from custody.frameworks.figures import (
    CASCADE_ACTIONS,
    CREDENTIAL_REASONS,
    SCOPE_REASONS,
    WINDOW_DAYS,
    Figures,
    figures,
)

__all__ = [
    "ASI",
    "CASCADE_ACTIONS",
    "CREDENTIAL_REASONS",
    "CSF",
    "FRAMEWORKS",
    "ITEMS",
    "NHI",
    "SCOPE_REASONS",
    "WINDOW_DAYS",
    "Evidence",
    "Figures",
    "Framework",
    "Item",
    "Row",
    "Section",
    "_days",
    "as_json",
    "figures",
    "mapping",
]


@dataclass(frozen=True, slots=True)
class Framework:
    id: str
    name: str
    url: str


NHI = Framework(
    "owasp-nhi-2025",
    "OWASP Top 10 Non-Human Identities Risks 2025",
    "https://owasp.org/www-project-non-human-identities-top-10/2025/top-10-2025/",
)
ASI = Framework(
    "owasp-agentic-2026",
    "OWASP Top 10 for Agentic Applications (Agentic Security Initiative), identity items",
    "https://genai.owasp.org/resource/owasp-top-10-for-agentic-applications-for-2026/",
)
CSF = Framework(
    "nist-csf-2.0-pr-aa",
    "NIST Cybersecurity Framework 2.0, PR.AA Identity Management, Authentication, and Access Control",
    "https://www.nist.gov/cyberframework",
)
FRAMEWORKS = (NHI, ASI, CSF)


# --- The mapping ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Item:
    framework: Framework
    id: str
    title: str
    control: str
    evidence: Callable[[Figures], list[Evidence]]
    # The official wording, where the framework gives one sentence (NIST CSF's subcategories).
    wording: str = ""


ITEMS: tuple[Item, ...] = (
    Item(
        NHI,
        "NHI1",
        "Improper Offboarding",
        "One-step offboarding of an agent with everything under it: its keys, grants, delegation links and live "
        "tokens are revoked and its sub-agents offboarded, recursively, with a preview of exactly what is cut; a "
        "human leaver's delegations are revoked and their agents re-sponsored or suspended. The time from the "
        "click to the last credential refused is measured. Expiry sweeps end what lapses, cascading to the "
        "links below; an agent whose sponsor leaves gets a succession review.",
        evidence.nhi1,
    ),
    Item(
        NHI,
        "NHI2",
        "Secret Leakage",
        "Agent keys are shown once and stored as a prefix and a keyed hash, never the secret. Reporting a key "
        "leaked revokes it and every token it obtained (and the tokens derived from those) and opens a review "
        "of the agent's access, since whoever held the key may have used it.",
        evidence.nhi2,
    ),
    Item(
        NHI,
        "NHI3",
        "Vulnerable Third-Party NHI",
        "Every tool, API and service an agent reaches is a registered resource with an owner and a sensitivity; "
        "access is per scope (resource:action) and each token is bound to one audience (RFC 8707), so a "
        "compromised third party holds only what was delegated to it, for minutes.",
        evidence.nhi3,
    ),
    Item(
        NHI,
        "NHI4",
        "Insecure Authentication",
        "Agents authenticate with their own key, exchanged (RFC 8693) for a short-lived EdDSA-signed "
        "delegation token; every check verifies signature, expiry and revocation at once, default deny, fail "
        "closed. No shared passwords, no long-lived bearer secrets in requests.",
        evidence.nhi4,
    ),
    Item(
        NHI,
        "NHI5",
        "Overprivileged NHI",
        "Delegation only attenuates (a link's scopes are a subset of its parent's and of the root human's "
        "grants); agent grants always expire, capped; just-in-time requests give a narrow, short grant for one "
        "task; reviews recommend revoking what recorded use shows is unused; blast radius ranks the queues.",
        evidence.nhi5,
    ),
    Item(
        NHI,
        "NHI6",
        "Insecure Cloud Deployment Configurations",
        "Partly in scope: Custos does not scan cloud configuration. It removes static deployment secrets from "
        "agents' paths (short-lived, audience-bound tokens instead), reads its own configuration from the "
        "environment and refuses bad values at start-up, and bounds every lifetime by configuration.",
        evidence.nhi6,
    ),
    Item(
        NHI,
        "NHI7",
        "Long-Lived Secrets",
        "Every agent key expires (a database constraint; default and maximum lifetimes by configuration) and "
        "rotates with a bounded overlap; key hygiene flags keys unused for the stale period and keys past the "
        "maximum age; delegation tokens live minutes, never past their delegation.",
        evidence.nhi7,
    ),
    Item(
        NHI,
        "NHI8",
        "Environment Isolation",
        "Partly in scope: tokens are bound to the audience they were issued for (an MCP server, an API) and "
        "refused elsewhere, and each delegation names its purpose; separate environments run separate Custos "
        "installations with their own signing keys.",
        evidence.nhi8,
    ),
    Item(
        NHI,
        "NHI9",
        "NHI Reuse",
        "Each agent is its own identity with its own keys; a sub-agent gets its own identity and its own "
        "delegation link rather than its parent's credential; every decision is recorded against the agent "
        "that made it, so reuse shows and is attributable.",
        evidence.nhi9,
    ),
    Item(
        NHI,
        "NHI10",
        "Human Use of NHI",
        "Every agent has an accountable human sponsor (required); a delegation token names the human it acts "
        "for (sub) and the chain of agents acting (act), so an action is never anonymous; console users act "
        "under their own accounts and personal API tokens, never an agent's key.",
        evidence.nhi10,
    ),
    Item(
        ASI,
        "ASI03",
        "Identity and Privilege Abuse",
        "Agents are delegated actors: every request is authorised when it happens against the chain of "
        "delegations back to the human, with attenuation only; an agent may delegate only to its own "
        "sub-agents, within its remaining depth; scopes outside the chain are refused and recorded.",
        evidence.asi03,
    ),
    Item(
        ASI,
        "ASI07",
        "Insecure Inter-Agent Communication",
        "What one agent passes to a sub-agent is a signed token whose nested act claim carries the whole actor "
        "chain, obtained by token exchange from the parent's token and verifiable offline with the JWKS; the "
        "sub-agent's token never carries more scopes, audience or lifetime than its parent's.",
        evidence.asi07,
    ),
    Item(
        ASI,
        "ASI08",
        "Cascading Failures",
        "Revocation cascades down, never sideways: revoking a link revokes every link below it, suspending an "
        "agent suspends its sub-agents, revoking a token revokes the tokens derived from it; checks fail closed "
        "when the database, cache or audit write fails.",
        evidence.asi08,
    ),
    Item(
        ASI,
        "ASI10",
        "Rogue Agents",
        "Drift detection: repeated denials or out-of-scope attempts raise a drift event that opens a review; an "
        "agent can be suspended (with its sub-agents) or offboarded in one step, effective on the very next "
        "check; every decision is in the tamper-evident audit log.",
        evidence.asi10,
    ),
    Item(
        CSF,
        "PR.AA-01",
        "Identity management",
        "A registry of agents, each with a sponsor, purpose and risk tier; keys issued, rotated, expired and "
        "revoked through services that write an audit event per change; humans' status (active, suspended, "
        "left) governs every agent acting for them.",
        evidence.pr_aa_01,
        "Identities and credentials for authorized users, services, and hardware are managed by the organization",
    ),
    Item(
        CSF,
        "PR.AA-02",
        "Identity proofing and binding",
        "A key is bound to one agent; a token is bound to one delegation (the human, the purpose, the scopes), "
        "one audience and, for sub-agents, the parent token it was exchanged from.",
        evidence.pr_aa_02,
        "Identities are proofed and bound to credentials based on the context of interactions",
    ),
    Item(
        CSF,
        "PR.AA-03",
        "Authentication",
        "Every runtime check authenticates the agent's key or token first; console users sign in with "
        "throttled logins and personal API tokens stored as keyed hashes.",
        evidence.pr_aa_03,
        "Users, services, and hardware are authenticated",
    ),
    Item(
        CSF,
        "PR.AA-04",
        "Identity assertions",
        "Delegation tokens are signed JWTs (EdDSA) with a kid, keys published as JWKS and rotated "
        "with overlap, verifiable offline; introspection and revocation (RFC 7662, RFC 7009) are honoured on "
        "every check.",
        evidence.pr_aa_04,
        "Identity assertions are protected, conveyed, and verified",
    ),
    Item(
        CSF,
        "PR.AA-05",
        "Access permissions and reviews",
        "Grants and delegations are time-bounded and attenuate only; campaigns and event-driven micro-reviews "
        "certify or revoke with recorded use as advice; separation of duties routes conflicted items to a "
        "fallback reviewer; overdue items are reminded and escalated.",
        evidence.pr_aa_05,
        "Access permissions, entitlements, and authorizations are defined in a policy, managed, enforced, and "
        "reviewed, and incorporate the principles of least privilege and separation of duties",
    ),
)


@dataclass(frozen=True, slots=True)
class Row:
    item: Item
    evidence: list[Evidence]


@dataclass(frozen=True, slots=True)
class Section:
    framework: Framework
    rows: list[Row]


def mapping(f: Figures) -> list[Section]:
    return [
        Section(framework, [Row(item, item.evidence(f)) for item in ITEMS if item.framework is framework])
        for framework in FRAMEWORKS
    ]


def as_json(sections: list[Section], f: Figures, absolute: Callable[[str], str]) -> dict[str, Any]:
    """The mapping with its evidence for auditors' working papers; links made absolute by ``absolute``."""
    return {
        "generated_at": f.now.isoformat(),
        "installation": settings.CUSTOS_ISSUER,
        "frameworks": [
            {
                "id": s.framework.id,
                "name": s.framework.name,
                "url": s.framework.url,
                "items": [
                    {
                        "id": r.item.id,
                        "title": r.item.title,
                        "wording": r.item.wording,
                        "control": r.item.control,
                        "evidence": [
                            {
                                "label": e.label,
                                "value": e.value,
                                "url": absolute(e.url) if e.url else "",
                                "note": e.note,
                            }
                            for e in r.evidence
                        ],
                    }
                    for r in s.rows
                ],
            }
            for s in sections
        ],
    }
