"""The whole catalogue in one place: every agent family, how each family's story turns during the six
replayed weeks, and what its agents are busy with when they work. ``check_catalogue`` fails loudly when
the data contradicts itself."""

from __future__ import annotations

from demo.agents import agent_name
from demo.families_business import EXECUTIVE, FINANCE, HR, LEGAL, RISK, SALES
from demo.families_operations import DATA, ENGINEERING, SECURITY, SUPPORT
from demo.people import PEOPLE_BY_KEY
from demo.resources import BASE_ACCESS, PROFILES, RESOURCES, scopes_of

FAMILIES = (*SUPPORT, *ENGINEERING, *FINANCE, *SALES, *SECURITY, *LEGAL, *HR, *DATA, *RISK, *EXECUTIVE)

# How a family's story goes: renewed on time, left to lapse, withdrawn in review, suspended, or a leaked key.
FATES = ("renew", "lapse", "revoke", "suspend", "leak")
FATE_WEIGHTS = (62, 12, 9, 9, 8)
FATE_OVERRIDES = {
    "csat-survey-sender-apac": "revoke",
    "kb-article-writer-onboarding": "revoke",
    "support-triage-emea": "renew",
    "support-triage-apac": "renew",
    "pr-reviewer-payments-api": "renew",
    "invoice-reconciler-eu": "renew",
    "kyc-document-checker-eu": "renew",
    "fraud-alert-triage-cards": "renew",
    "phishing-triage-security-mailbox": "suspend",
    "lead-enricher-emea": "leak",
}
REVOKE_REASONS = (
    "Access review: not used in the last 21 days",
    "Pilot finished; the team went back to the manual process",
    "Sponsor asked to withdraw: duplicated by another agent",
    "Access review: scopes broader than the task needs",
)
DRIFTED = "Repeated out-of-scope attempts; suspended pending review"
# Suspended for drift, whatever the draw: a reported phishing e-mail it triaged told it to go elsewhere.
DRIFTING = frozenset({"phishing-triage-security-mailbox"})
SUSPEND_REASONS = (
    DRIFTED,
    "Vendor model update under evaluation",
    "Unexpected volume of outbound messages",
    "Prompt-injection finding from red-team exercise",
)
# Refusals a parent agent meets when its own chain has stopped being usable.
CHAIN_REFUSALS = frozenset(
    {
        "agent_inactive",
        "sponsor_inactive",
        "human_inactive",
        "chain_broken",
        "delegator_lacks_grant",
        "delegation_expired",
        "delegation_revoked",
    }
)
SUB_AGENT_SUSPEND_REASONS = ("Retired: replaced by a newer model", "Excess denials; suspended pending review")
JIT: dict[str, tuple[str, int, str]] = {
    "incident-responder-payments": ("aws.production:read", 4, "INC-2291: elevated 5xx on payments-api"),
    "incident-responder-platform": ("vault.secrets:read", 2, "INC-2307: certificate expiry on the ingress"),
    "sql-analyst-risk": ("warehouse.customers_pii:read", 8, "Regulator request RFI-118: sample of flagged accounts"),
    "refund-assistant-cards": ("payments.refunds:approve", 6, "Backlog clearance after the card-network outage"),
    "fraud-alert-triage-cards": ("payments.transfers:read", 12, "Mule-account investigation FR-4471"),
    "dependency-updater-platform-infra": ("github.repos:merge", 3, "Emergency bump of the base image (OpenSSL CVE)"),
}
# (person, scope, day, by reviewer?, reason): access reviews that took a human's grant away.
HUMAN_GRANT_REVOCATIONS = (
    ("amara-nwosu", "email.outbound:send", 37, True, "Access review: no outbound e-mail in this role"),
    ("diego-alvarez", "zendesk.tickets:close", 37, True, "Access review: closing is done by team leads"),
    ("priyanka-rao", "warehouse.customers_pii:export", 38, False, "Access review: exports go through the pii-redactor"),
    ("noah-fischer", "aws.production:deploy", 39, False, "Production deploys move to the deploy pipeline only"),
    ("laura-garcia", "crm.contacts:export", 40, False, "Access review: export not used in 90 days"),
)

# What a family's agents work on, one goal per working session ({n}: the ticket, run or case number).
# It is the ``intent`` of every check in the session, the sub-agents' included.
GOALS: dict[str, tuple[str, ...]] = {
    "support-triage": ("triage ticket ZD-{n}", "draft the first reply to ZD-{n}", "route escalation ZD-{n}"),
    "refund-assistant": ("prepare the refund for dispute DSP-{n}", "check refund eligibility for ZD-{n}"),
    "kb-article-writer": ("turn ZD-{n} into a help-centre article", "update the macro for ZD-{n}"),
    "csat-survey-sender": ("send the satisfaction survey for ZD-{n}",),
    "escalation-router": ("route escalation ZD-{n} to engineering", "sync ZD-{n} with its Jira issue"),
    "pr-reviewer": ("review pull request #{n}", "rerun the checks on pull request #{n}"),
    "dependency-updater": ("open the upgrade pull request for dependency bump {n}",),
    "incident-responder": ("acknowledge page PD-{n} and gather signals", "draft the update for incident INC-{n}"),
    "release-notes-writer": ("write the release notes for release {n}",),
    "deploy-assistant": ("deploy build {n} to staging", "report the staging deploy of build {n}"),
    "prod-deploy-gate": ("gate the production deploy of build {n}", "compare the canary of build {n}"),
    "jira-groomer": ("groom the backlog: batch {n}", "close stale issues, batch {n}"),
    "on-call-digest": ("post the on-call digest for week {n}",),
    "invoice-reconciler": ("reconcile invoice INV-{n}", "post the matching entry for INV-{n}"),
    "dunning-assistant": ("chase overdue invoice INV-{n}",),
    "expense-auditor": ("audit expense report EXP-{n}",),
    "ap-payment-preparer": ("prepare payment run PR-{n}",),
    "month-end-close-assistant": ("run close checklist step {n}",),
    "forecast-builder": ("refresh the revenue forecast, version {n}",),
    "audit-evidence-collector": ("collect evidence for control SOX-{n}",),
    "lead-enricher": ("enrich lead L-{n}",),
    "meeting-prep": ("prepare the account brief for meeting M-{n}",),
    "outbound-sequencer": ("send step 2 of outbound sequence S-{n}",),
    "pipeline-forecaster": ("score the pipeline, snapshot {n}",),
    "crm-deduplicator": ("merge duplicate contacts, batch {n}",),
    "proposal-drafter": ("draft the proposal for opportunity OPP-{n}",),
    "secret-rotator": ("rotate the credentials of service {n}",),
    "vuln-triage": ("triage code-scanning alert {n}",),
    "siem-alert-triage": ("triage SIEM alert SA-{n}",),
    "access-review-assistant": ("prepare access review batch {n}",),
    "phishing-triage": ("triage reported phishing PH-{n}",),
    "contract-reviewer": ("review contract C-{n} against the playbook",),
    "nda-generator": ("send NDA {n} for signature",),
    "regulatory-monitor": ("summarise regulatory update RU-{n}",),
    "onboarding-coordinator": ("prepare the first week of joiner J-{n}",),
    "candidate-screener": ("screen applicant A-{n}",),
    "payroll-checker": ("check payroll run {n} for anomalies",),
    "interview-scheduler": ("schedule interviews for applicant A-{n}",),
    "sql-analyst": ("answer data request DR-{n}",),
    "pii-redactor": ("redact export EX-{n}",),
    "data-quality-monitor": ("check data quality, run {n}",),
    "churn-predictor": ("score churn risk, run {n}",),
    "dbt-pr-reviewer": ("review dbt pull request #{n}",),
    "fraud-alert-triage": ("triage fraud alert FA-{n}",),
    "kyc-document-checker": ("check KYC case KYC-{n}",),
    "chargeback-responder": ("answer chargeback CB-{n}",),
    "board-pack-assistant": ("assemble board pack section {n}",),
    "calendar-assistant": ("arrange meeting request {n}",),
}


def check_catalogue() -> None:
    """Fail loudly if the catalogue contradicts itself (a sub-agent wider than its parent, a sponsor
    lacking what their agent needs, a name used twice, a family without goals)."""
    actions = {r.name: set(r.actions) for r in RESOURCES}

    def known(scope: str) -> None:
        name, _, action = scope.partition(":")
        if action not in actions.get(name, set()):
            raise ValueError(f"unknown scope {scope}")

    for scopes in [BASE_ACCESS, *PROFILES.values()]:
        for scope in scopes:
            known(scope)
    names: set[str] = set()
    for family in FAMILIES:
        if not GOALS.get(family.spec.name):
            raise ValueError(f"no goals for {family.spec.name}")
        for spec in family.spec.walk():
            for scope in (*spec.scopes, *spec.own):
                known(scope)
            for child in spec.children:
                if not set(child.scopes) < set(spec.scopes):
                    raise ValueError(f"{child.name} is not strictly narrower than {spec.name}")
        for variant, sponsor in family.variants:
            lacking = set(family.spec.scopes) - set(scopes_of(PEOPLE_BY_KEY[sponsor]))
            if lacking:
                raise ValueError(f"{sponsor} lacks {sorted(lacking)} for {family.spec.name}")
            for spec in family.spec.walk():
                name = agent_name(spec, variant)
                if name in names:
                    raise ValueError(f"agent name {name} used twice")
                names.add(name)
