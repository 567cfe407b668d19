"""What Halyard's people and agents act on: the resources with their owners and actions, and the access
each kind of job needs. Plain data; a scope is ``resource:action``."""

from __future__ import annotations

from dataclasses import dataclass

from demo.people import Person
from governance.models import ResourceKind, Sensitivity


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    name: str
    kind: str
    sensitivity: str
    owner: str
    actions: tuple[str, ...]
    description: str


def scopes(*groups: str) -> tuple[str, ...]:
    """Scopes written compactly: ``scopes("jira.issues:read,write")`` is
    ``("jira.issues:read", "jira.issues:write")``."""
    return tuple(
        f"{resource}:{action}"
        for group in groups
        for resource, _, actions in [group.partition(":")]
        for action in actions.split(",")
    )


_s = scopes

K, S = ResourceKind, Sensitivity
RESOURCES: tuple[ResourceSpec, ...] = (
    ResourceSpec(
        "crm.contacts",
        K.API,
        S.HIGH,
        "kevin-obrien",
        ("read", "write", "export", "delete"),
        "Customer and prospect contacts in the CRM.",
    ),
    ResourceSpec(
        "crm.opportunities",
        K.API,
        S.MEDIUM,
        "kevin-obrien",
        ("read", "write"),
        "Sales pipeline: deals, stages and amounts.",
    ),
    ResourceSpec("calendar.events", K.TOOL, S.LOW, "nadia-haddad", ("read", "write"), "Google Workspace calendars."),
    ResourceSpec(
        "email.outbound", K.SERVICE, S.MEDIUM, "kenji-watanabe", ("send",), "Transactional and outbound e-mail relay."
    ),
    ResourceSpec(
        "slack.messages",
        K.TOOL,
        S.MEDIUM,
        "nadia-haddad",
        ("read", "send"),
        "Slack messages in public and shared channels.",
    ),
    ResourceSpec(
        "slack.channels", K.TOOL, S.LOW, "nadia-haddad", ("read", "create", "archive"), "Slack channel administration."
    ),
    ResourceSpec(
        "jira.issues",
        K.TOOL,
        S.LOW,
        "kenji-watanabe",
        ("read", "write", "comment", "transition"),
        "Jira issues across all projects.",
    ),
    ResourceSpec("confluence.pages", K.TOOL, S.LOW, "kenji-watanabe", ("read", "write"), "The internal wiki."),
    ResourceSpec(
        "github.repos",
        K.TOOL,
        S.HIGH,
        "daniel-reyes",
        ("read", "comment", "write", "merge"),
        "Source code in the halyard GitHub organisation.",
    ),
    ResourceSpec("github.actions", K.TOOL, S.HIGH, "kenji-watanabe", ("read", "run"), "CI workflows and their logs."),
    ResourceSpec("aws.staging", K.SERVICE, S.MEDIUM, "kenji-watanabe", ("read", "deploy"), "The staging AWS account."),
    ResourceSpec(
        "aws.production",
        K.SERVICE,
        S.CRITICAL,
        "kenji-watanabe",
        ("read", "deploy", "admin"),
        "The production AWS account (card data environment).",
    ),
    ResourceSpec(
        "vault.secrets",
        K.SERVICE,
        S.CRITICAL,
        "paul-andersen",
        ("read", "rotate"),
        "HashiCorp Vault: database credentials, API keys, signing keys.",
    ),
    ResourceSpec("datadog.metrics", K.TOOL, S.LOW, "olivia-brown", ("read",), "Metrics, traces and dashboards."),
    ResourceSpec("sentry.errors", K.TOOL, S.LOW, "olivia-brown", ("read", "resolve"), "Application error tracking."),
    ResourceSpec(
        "pagerduty.incidents",
        K.TOOL,
        S.MEDIUM,
        "olivia-brown",
        ("read", "acknowledge", "resolve"),
        "On-call incidents and escalations.",
    ),
    ResourceSpec(
        "statuspage.incidents", K.SERVICE, S.MEDIUM, "aisha-rahman", ("read", "publish"), "The public status page."
    ),
    ResourceSpec(
        "zendesk.tickets",
        K.TOOL,
        S.MEDIUM,
        "elena-petrova",
        ("read", "comment", "write", "close"),
        "Customer support tickets.",
    ),
    ResourceSpec(
        "zendesk.macros", K.TOOL, S.LOW, "zoe-martin", ("read", "write"), "Support macros and help-centre snippets."
    ),
    ResourceSpec(
        "payments.refunds",
        K.API,
        S.CRITICAL,
        "oliver-grant",
        ("read", "create", "approve"),
        "Refunds to card and bank accounts.",
    ),
    ResourceSpec(
        "payments.transfers",
        K.API,
        S.CRITICAL,
        "priya-natarajan",
        ("read", "initiate", "approve"),
        "Outgoing bank transfers (payouts, vendor payments).",
    ),
    ResourceSpec(
        "payments.ledger", K.DATASET, S.CRITICAL, "oliver-grant", ("read",), "The double-entry payments ledger."
    ),
    ResourceSpec(
        "billing.invoices",
        K.API,
        S.HIGH,
        "oliver-grant",
        ("read", "write", "send", "void"),
        "Customer invoices and credit notes.",
    ),
    ResourceSpec(
        "netsuite.journal",
        K.API,
        S.HIGH,
        "chloe-dubois",
        ("read", "post"),
        "General ledger journal entries in NetSuite.",
    ),
    ResourceSpec(
        "expenses.reports",
        K.API,
        S.MEDIUM,
        "oliver-grant",
        ("read", "approve", "flag"),
        "Employee expense reports and receipts.",
    ),
    ResourceSpec(
        "warehouse.customers_pii",
        K.DATASET,
        S.CRITICAL,
        "samuel-adeyemi",
        ("read", "export"),
        "Customer identities, addresses and documents.",
    ),
    ResourceSpec(
        "warehouse.transactions",
        K.DATASET,
        S.HIGH,
        "ahmed-hassan",
        ("read", "query"),
        "Every payment transaction, pseudonymised.",
    ),
    ResourceSpec(
        "warehouse.analytics",
        K.DATASET,
        S.LOW,
        "ahmed-hassan",
        ("read", "query"),
        "Aggregated product and revenue metrics.",
    ),
    ResourceSpec(
        "kyc.verifications",
        K.API,
        S.CRITICAL,
        "george-mensah",
        ("read", "approve", "reject"),
        "Know-your-customer checks on new merchants.",
    ),
    ResourceSpec(
        "sanctions.screening", K.API, S.HIGH, "anna-kim", ("read", "screen"), "Sanctions and PEP list screening."
    ),
    ResourceSpec(
        "fraud.alerts",
        K.API,
        S.HIGH,
        "george-mensah",
        ("read", "triage", "escalate"),
        "Fraud-detection alerts on payments.",
    ),
    ResourceSpec(
        "legal.contracts",
        K.DATASET,
        S.HIGH,
        "michael-shaw",
        ("read", "write"),
        "Customer, vendor and employment contracts.",
    ),
    ResourceSpec("docusign.envelopes", K.TOOL, S.HIGH, "helen-marsh", ("read", "send"), "E-signature envelopes."),
    ResourceSpec(
        "hr.employees", K.DATASET, S.HIGH, "sophie-turner", ("read", "write"), "Employee records from Workday."
    ),
    ResourceSpec(
        "hr.payroll", K.DATASET, S.CRITICAL, "grace-liu", ("read", "approve"), "Payroll runs and compensation."
    ),
    ResourceSpec(
        "recruiting.candidates",
        K.DATASET,
        S.HIGH,
        "lucas-moreau",
        ("read", "write"),
        "Candidates and interview feedback.",
    ),
    ResourceSpec("okta.users", K.API, S.CRITICAL, "nadia-haddad", ("read", "suspend"), "Workforce identities in Okta."),
    ResourceSpec("siem.alerts", K.DATASET, S.HIGH, "emily-ross", ("read", "triage"), "Security alerts in the SIEM."),
)

# What each kind of job needs: a human's grants are the union of BASE and their profiles.
BASE_ACCESS = _s("slack.messages:read,send", "jira.issues:read", "confluence.pages:read", "calendar.events:read,write")
PROFILES: dict[str, tuple[str, ...]] = {
    "exec": _s("warehouse.analytics:read", "crm.opportunities:read"),
    "engineer": _s(
        "github.repos:read,comment,write",
        "github.actions:read,run",
        "jira.issues:write,comment,transition",
        "confluence.pages:write",
        "aws.staging:read,deploy",
        "sentry.errors:read,resolve",
        "datadog.metrics:read",
    ),
    "eng_lead": _s("github.repos:merge", "aws.production:read"),
    "sre": _s(
        "aws.production:read,deploy",
        "pagerduty.incidents:read,acknowledge,resolve",
        "statuspage.incidents:read,publish",
        "vault.secrets:read",
        "slack.channels:create",
    ),
    "payments_eng": _s("payments.refunds:read", "payments.ledger:read"),
    "support": _s(
        "zendesk.tickets:read,comment,write,close",
        "zendesk.macros:read",
        "crm.contacts:read",
        "email.outbound:send",
        "statuspage.incidents:read",
        "jira.issues:write,comment",
    ),
    "support_lead": _s("zendesk.macros:write", "payments.refunds:read,create", "slack.channels:create"),
    "escalations": _s("payments.refunds:read,create", "payments.ledger:read", "fraud.alerts:read"),
    "finance": _s(
        "billing.invoices:read,write,send",
        "netsuite.journal:read,post",
        "payments.ledger:read",
        "expenses.reports:read,flag",
        "email.outbound:send",
    ),
    "controller": _s(
        "payments.refunds:read,approve",
        "payments.transfers:read,approve",
        "expenses.reports:approve",
        "billing.invoices:void",
    ),
    "ap": _s("payments.transfers:read,initiate"),
    "fpa": _s("warehouse.analytics:read,query", "warehouse.transactions:read,query", "crm.opportunities:read"),
    "audit": _s(
        "payments.ledger:read",
        "netsuite.journal:read",
        "expenses.reports:read",
        "billing.invoices:read",
        "okta.users:read",
        "warehouse.transactions:read",
    ),
    "sales": _s(
        "crm.contacts:read,write", "crm.opportunities:read,write", "email.outbound:send", "docusign.envelopes:read"
    ),
    "sales_lead": _s("crm.contacts:export", "docusign.envelopes:send", "warehouse.analytics:read"),
    "revops": _s("crm.contacts:export,delete", "warehouse.analytics:read,query"),
    "security": _s(
        "siem.alerts:read,triage",
        "github.repos:read,comment",
        "vault.secrets:read,rotate",
        "okta.users:read",
        "aws.production:read",
        "sentry.errors:read",
        "datadog.metrics:read",
        "jira.issues:write,comment",
    ),
    "iam": _s("okta.users:suspend", "hr.employees:read", "slack.channels:create,archive"),
    "legal": _s("legal.contracts:read,write", "docusign.envelopes:read,send", "crm.opportunities:read"),
    "compliance": _s(
        "sanctions.screening:read,screen",
        "kyc.verifications:read",
        "legal.contracts:read",
        "warehouse.transactions:read",
    ),
    "hr": _s(
        "hr.employees:read,write",
        "recruiting.candidates:read,write",
        "email.outbound:send",
        "okta.users:read",
        "slack.channels:create",
    ),
    "hr_lead": _s("hr.payroll:read,approve"),
    "data": _s(
        "warehouse.analytics:read,query",
        "warehouse.transactions:read,query",
        "github.repos:read,comment,write",
        "jira.issues:write,comment,transition",
        "datadog.metrics:read",
        "confluence.pages:write",
    ),
    "data_pii": _s("warehouse.customers_pii:read,export"),
    "risk": _s(
        "fraud.alerts:read,triage,escalate",
        "kyc.verifications:read,approve,reject",
        "sanctions.screening:read,screen",
        "payments.ledger:read",
        "warehouse.transactions:read,query",
        "zendesk.tickets:read,comment",
    ),
}


def scopes_of(person: Person) -> list[str]:
    """The scopes a person's job gives them: the base access plus each of their profiles."""
    wanted = set(BASE_ACCESS) if person.profiles else set()
    for profile in person.profiles:
        wanted.update(PROFILES[profile])
    return sorted(wanted)
