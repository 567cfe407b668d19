"""The demo organisation behind ``manage.py seed_demo``: Halyard Payments, a mid-size payments company.

Everything is created through ``governance.services`` (so every change writes its audit event), with
the clock moved back in time by ``time_machine``: the history is replayed from a queue of dated actions,
oldest first, so the audit chain's sequence order is its time order. The catalogue below is plain data;
the replay draws every choice from one seeded ``random.Random``, so the same code builds the same
organisation (only the dates move with the day it runs).
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

import time_machine
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models import Max, Min, Model
from django.utils import timezone

from audit.models import ActorKind, AuditEvent
from audit.services import Actor, Target, audit_append
from governance import roles, services
from governance.errors import ValidationFailed
from governance.models import (
    Agent,
    AgentKey,
    AgentStatus,
    Delegation,
    DelegationStatus,
    Grant,
    GrantSource,
    Human,
    HumanStatus,
    Resource,
    ResourceKind,
    RiskTier,
    Sensitivity,
)
from governance.selectors import human_held_scopes

COMPANY = "Halyard Payments"
DOMAIN = "halyard.example"
DEMO_PASSWORD = "custos-demo"
SEED = 4211
HISTORY_DAYS = 42

SEED_ACTOR = Actor.system("seed_demo")
SCIM_ACTOR = Actor.system("scim: workday")
SWEEP_ACTOR = Actor.system("expiry sweep")

# --- The catalogue --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    key: str
    name: str
    title: str
    department: str
    manager: str | None
    profiles: tuple[str, ...] = ()
    joins_day: int = 0
    # (day, new status, reason), in day order. "left" is a leaver: their access is cut that day.
    changes: tuple[tuple[int, str, str], ...] = ()

    @property
    def email(self) -> str:
        return f"{self.key.replace('-', '.')}@{DOMAIN}"


P = Person
PEOPLE: tuple[Person, ...] = (
    P("maya-okonkwo", "Maya Okonkwo", "Chief Executive Officer", "Executive", None, ("exec",)),
    P(
        "daniel-reyes",
        "Daniel Reyes",
        "Chief Technology Officer",
        "Engineering",
        "maya-okonkwo",
        ("engineer", "eng_lead", "sre"),
    ),
    P(
        "priya-natarajan",
        "Priya Natarajan",
        "Chief Financial Officer",
        "Finance",
        "maya-okonkwo",
        ("finance", "controller", "fpa"),
    ),
    P("tom-becker", "Tom Becker", "VP Sales", "Sales", "maya-okonkwo", ("sales", "sales_lead")),
    P("aisha-rahman", "Aisha Rahman", "VP Customer Support", "Support", "maya-okonkwo", ("support", "support_lead")),
    P("lars-eriksen", "Lars Eriksen", "Chief Information Security Officer", "Security", "maya-okonkwo", ("security",)),
    P("helen-marsh", "Helen Marsh", "General Counsel", "Legal", "maya-okonkwo", ("legal",)),
    P("grace-liu", "Grace Liu", "VP People", "HR", "maya-okonkwo", ("hr", "hr_lead")),
    P("samuel-adeyemi", "Samuel Adeyemi", "VP Data", "Data", "maya-okonkwo", ("data", "data_pii")),
    P("ines-carvalho", "Inês Carvalho", "Chief Risk Officer", "Risk", "maya-okonkwo", ("risk", "compliance")),
    # Engineering
    P(
        "sofia-marin",
        "Sofia Marin",
        "Engineering Manager, Payments",
        "Engineering",
        "daniel-reyes",
        ("engineer", "eng_lead", "payments_eng"),
    ),
    P(
        "arjun-mehta",
        "Arjun Mehta",
        "Senior Software Engineer",
        "Engineering",
        "sofia-marin",
        ("engineer", "payments_eng"),
    ),
    P("lucy-chen", "Lucy Chen", "Software Engineer", "Engineering", "sofia-marin", ("engineer", "payments_eng")),
    P(
        "mateo-silva",
        "Mateo Silva",
        "Software Engineer",
        "Engineering",
        "sofia-marin",
        ("engineer",),
        changes=((12, HumanStatus.SUSPENDED, "Medical leave"), (19, HumanStatus.ACTIVE, "Returned from leave")),
    ),
    P(
        "hannah-kowalski",
        "Hannah Kowalski",
        "Senior Software Engineer",
        "Engineering",
        "sofia-marin",
        ("engineer", "payments_eng"),
        changes=((31, HumanStatus.LEFT, "Resigned; last working day"),),
    ),
    P(
        "ava-richardson",
        "Ava Richardson",
        "Software Engineer",
        "Engineering",
        "sofia-marin",
        ("engineer",),
        joins_day=16,
    ),
    P(
        "kenji-watanabe",
        "Kenji Watanabe",
        "Engineering Manager, Platform",
        "Engineering",
        "daniel-reyes",
        ("engineer", "eng_lead", "sre"),
    ),
    P(
        "fatima-zahra",
        "Fatima Zahra",
        "Site Reliability Engineer",
        "Engineering",
        "kenji-watanabe",
        ("engineer", "sre"),
    ),
    P("noah-fischer", "Noah Fischer", "Platform Engineer", "Engineering", "kenji-watanabe", ("engineer", "sre")),
    P(
        "olivia-brown",
        "Olivia Brown",
        "Senior Site Reliability Engineer",
        "Engineering",
        "kenji-watanabe",
        ("engineer", "sre"),
    ),
    P("ben-cohen", "Ben Cohen", "Software Engineer, Platform", "Engineering", "kenji-watanabe", ("engineer",)),
    # Support
    P(
        "elena-petrova",
        "Elena Petrova",
        "Support Operations Manager",
        "Support",
        "aisha-rahman",
        ("support", "support_lead"),
    ),
    P(
        "james-oconnor",
        "James O'Connor",
        "Support Team Lead, EMEA",
        "Support",
        "elena-petrova",
        ("support", "support_lead"),
    ),
    P("mei-tanaka", "Mei Tanaka", "Support Team Lead, APAC", "Support", "elena-petrova", ("support", "support_lead")),
    P("diego-alvarez", "Diego Álvarez", "Senior Support Specialist", "Support", "elena-petrova", ("support",)),
    P("amara-nwosu", "Amara Nwosu", "Support Specialist", "Support", "elena-petrova", ("support",)),
    P(
        "liam-walsh",
        "Liam Walsh",
        "Support Specialist",
        "Support",
        "elena-petrova",
        ("support",),
        changes=((33, HumanStatus.SUSPENDED, "Extended leave"),),
    ),
    P("zoe-martin", "Zoe Martin", "Support Knowledge Manager", "Support", "elena-petrova", ("support", "support_lead")),
    P("kwame-boateng", "Kwame Boateng", "Support Specialist", "Support", "elena-petrova", ("support",), joins_day=22),
    P(
        "marcus-hill",
        "Marcus Hill",
        "Support Manager, Payment Escalations",
        "Support",
        "aisha-rahman",
        ("support", "support_lead", "escalations"),
    ),
    P("yuki-sato", "Yuki Sato", "Escalations Specialist", "Support", "marcus-hill", ("support", "escalations")),
    P(
        "ryan-park",
        "Ryan Park",
        "Escalations Specialist",
        "Support",
        "marcus-hill",
        ("support", "escalations"),
        changes=((26, HumanStatus.LEFT, "Contract ended"),),
    ),
    # Finance
    P("oliver-grant", "Oliver Grant", "Financial Controller", "Finance", "priya-natarajan", ("finance", "controller")),
    P("chloe-dubois", "Chloé Dubois", "Senior Accountant", "Finance", "oliver-grant", ("finance",)),
    P("ethan-wright", "Ethan Wright", "Accounts Payable Specialist", "Finance", "oliver-grant", ("finance", "ap")),
    P("sara-lindqvist", "Sara Lindqvist", "Billing Analyst", "Finance", "oliver-grant", ("finance",)),
    P(
        "peter-novak",
        "Peter Novak",
        "Billing Analyst",
        "Finance",
        "oliver-grant",
        (),
        changes=((0, HumanStatus.LEFT, "Left before the Custos roll-out; kept for the record"),),
    ),
    P("victor-nguyen", "Victor Nguyen", "FP&A Manager", "Finance", "priya-natarajan", ("finance", "fpa")),
    P("rachel-stein", "Rachel Stein", "Internal Audit Lead", "Finance", "priya-natarajan", ("audit",)),
    # Sales
    P("isabel-rossi", "Isabel Rossi", "Sales Director, EMEA", "Sales", "tom-becker", ("sales", "sales_lead")),
    P("jack-thompson", "Jack Thompson", "Account Executive", "Sales", "isabel-rossi", ("sales",)),
    P("nina-petersen", "Nina Petersen", "Account Executive", "Sales", "isabel-rossi", ("sales",)),
    P(
        "omar-farouk",
        "Omar Farouk",
        "Sales Development Representative",
        "Sales",
        "isabel-rossi",
        ("sales",),
        changes=((22, HumanStatus.LEFT, "Resigned"),),
    ),
    P("kevin-obrien", "Kevin O'Brien", "Revenue Operations Manager", "Sales", "tom-becker", ("sales", "revops")),
    P("laura-garcia", "Laura García", "Sales Operations Analyst", "Sales", "kevin-obrien", ("sales", "revops")),
    # Security
    P("nadia-haddad", "Nadia Haddad", "IAM Administrator", "Security", "lars-eriksen", ("security", "iam")),
    P("paul-andersen", "Paul Andersen", "Security Engineering Manager", "Security", "lars-eriksen", ("security",)),
    P("tariq-aziz", "Tariq Aziz", "Security Engineer", "Security", "paul-andersen", ("security",)),
    P("emily-ross", "Emily Ross", "Detection Engineer", "Security", "paul-andersen", ("security",)),
    # Legal
    P("michael-shaw", "Michael Shaw", "Senior Counsel", "Legal", "helen-marsh", ("legal",)),
    P("anna-kim", "Anna Kim", "Compliance Manager", "Legal", "helen-marsh", ("legal", "compliance")),
    P("david-levi", "David Levi", "Compliance Analyst", "Legal", "anna-kim", ("compliance",)),
    # HR
    P("sophie-turner", "Sophie Turner", "People Operations Manager", "HR", "grace-liu", ("hr",)),
    P("lucas-moreau", "Lucas Moreau", "Technical Recruiter", "HR", "sophie-turner", ("hr",)),
    P(
        "jasmine-patel",
        "Jasmine Patel",
        "HR Generalist",
        "HR",
        "sophie-turner",
        ("hr",),
        changes=((35, HumanStatus.SUSPENDED, "Parental leave"),),
    ),
    # Data
    P("ahmed-hassan", "Ahmed Hassan", "Analytics Engineering Manager", "Data", "samuel-adeyemi", ("data",)),
    P("clara-jensen", "Clara Jensen", "Data Engineer", "Data", "ahmed-hassan", ("data", "data_pii")),
    P("felix-wagner", "Felix Wagner", "Analytics Engineer", "Data", "ahmed-hassan", ("data",)),
    P("priyanka-rao", "Priyanka Rao", "Data Scientist", "Data", "ahmed-hassan", ("data", "data_pii")),
    # Risk
    P("george-mensah", "George Mensah", "Fraud Operations Manager", "Risk", "ines-carvalho", ("risk",)),
    P("leila-karimi", "Leila Karimi", "Fraud Analyst", "Risk", "george-mensah", ("risk",)),
    P("sam-ortiz", "Sam Ortiz", "KYC Analyst", "Risk", "george-mensah", ("risk", "compliance")),
    P("hugo-bernard", "Hugo Bernard", "KYC Analyst", "Risk", "george-mensah", ("risk", "compliance")),
)
PEOPLE_BY_KEY = {p.key: p for p in PEOPLE}

# Console users, one per role, each linked to the human they are.
DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", roles.ADMIN, "nadia-haddad"),
    ("reviewer", roles.REVIEWER, "elena-petrova"),
    ("auditor", roles.AUDITOR, "rachel-stein"),
)


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    name: str
    kind: str
    sensitivity: str
    owner: str
    actions: tuple[str, ...]
    description: str


def _s(*groups: str) -> tuple[str, ...]:
    """Scopes written compactly: ``_s("jira.issues:read,write")`` is ``("jira.issues:read", "jira.issues:write")``."""
    return tuple(
        f"{resource}:{action}"
        for group in groups
        for resource, _, actions in [group.partition(":")]
        for action in actions.split(",")
    )


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


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """An agent and the sub-agents it spawns. ``scopes`` is what its delegation carries: a sub-agent's
    scopes are a strict subset of its parent's (attenuation). ``own`` are grants the agent holds itself."""

    name: str
    purpose: str
    risk: str
    scopes: tuple[str, ...]
    children: tuple[AgentSpec, ...] = ()
    own: tuple[str, ...] = ()

    @property
    def height(self) -> int:
        return 1 + max(c.height for c in self.children) if self.children else 0

    def walk(self) -> Iterable[AgentSpec]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(frozen=True, slots=True)
class Family:
    """An agent template deployed once per (variant, sponsor)."""

    spec: AgentSpec
    variants: tuple[tuple[str, str], ...]


A, R = AgentSpec, RiskTier
FAMILIES: tuple[Family, ...] = (
    # Support
    Family(
        A(
            "support-triage",
            "Triages the {v} support queue: classifies tickets, drafts first replies, routes escalations.",
            R.MEDIUM,
            _s("zendesk.tickets:read,comment,write", "crm.contacts:read", "slack.messages:send"),
            own=_s("zendesk.macros:read"),
            children=(
                A(
                    "ticket-classifier",
                    "Tags and prioritises new tickets in the {v} queue.",
                    R.LOW,
                    _s("zendesk.tickets:read,write"),
                    children=(
                        A(
                            "language-detector",
                            "Detects the language of {v} tickets for routing.",
                            R.LOW,
                            _s("zendesk.tickets:read"),
                        ),
                    ),
                ),
                A(
                    "reply-drafter",
                    "Drafts first replies for {v} tickets, using the customer's CRM record.",
                    R.MEDIUM,
                    _s("zendesk.tickets:read,comment", "crm.contacts:read"),
                    children=(
                        A(
                            "tone-checker",
                            "Checks drafted {v} replies for tone and policy wording.",
                            R.LOW,
                            _s("zendesk.tickets:read"),
                        ),
                    ),
                ),
            ),
        ),
        (
            ("emea", "james-oconnor"),
            ("apac", "mei-tanaka"),
            ("amer", "diego-alvarez"),
            ("vip", "amara-nwosu"),
            ("latam", "kwame-boateng"),
        ),
    ),
    Family(
        A(
            "refund-assistant",
            "Prepares refunds for {v} disputes raised in support tickets.",
            R.HIGH,
            _s("payments.refunds:read,create", "zendesk.tickets:read,comment"),
            children=(
                A(
                    "refund-eligibility-checker",
                    "Checks {v} refund requests against the refund policy.",
                    R.MEDIUM,
                    _s("payments.refunds:read", "zendesk.tickets:read"),
                ),
            ),
        ),
        (("cards", "marcus-hill"), ("bank-transfers", "yuki-sato")),
    ),
    Family(
        A(
            "kb-article-writer",
            "Turns resolved {v} tickets into help-centre articles and macros.",
            R.LOW,
            _s("zendesk.tickets:read", "zendesk.macros:read,write"),
            children=(
                A(
                    "macro-suggester",
                    "Suggests macros for recurring {v} questions.",
                    R.LOW,
                    _s("zendesk.macros:read", "zendesk.tickets:read"),
                ),
            ),
        ),
        (("payments", "zoe-martin"), ("onboarding", "james-oconnor")),
    ),
    Family(
        A(
            "csat-survey-sender",
            "Sends satisfaction surveys after {v} tickets close.",
            R.LOW,
            _s("zendesk.tickets:read", "email.outbound:send"),
            own=_s("email.outbound:send"),
        ),
        (("emea", "liam-walsh"), ("apac", "mei-tanaka")),
    ),
    Family(
        A(
            "escalation-router",
            "Routes {v} escalations to engineering and keeps Jira and Zendesk in step.",
            R.MEDIUM,
            _s("zendesk.tickets:read,write", "jira.issues:read,write", "slack.messages:send"),
            children=(
                A(
                    "jira-linker",
                    "Links {v} tickets to Jira issues.",
                    R.LOW,
                    _s("jira.issues:read,write", "zendesk.tickets:read"),
                ),
            ),
        ),
        (("emea", "diego-alvarez"), ("payments", "ryan-park")),
    ),
    # Engineering
    Family(
        A(
            "pr-reviewer",
            "Reviews pull requests on {v}: summarises diffs, runs tests, comments findings.",
            R.MEDIUM,
            _s("github.repos:read,comment", "github.actions:read,run"),
            own=_s("slack.messages:send"),
            children=(
                A(
                    "diff-summariser",
                    "Summarises {v} pull-request diffs for reviewers.",
                    R.LOW,
                    _s("github.repos:read"),
                ),
                A(
                    "test-runner",
                    "Runs the {v} test suite on pull requests.",
                    R.MEDIUM,
                    _s("github.actions:read,run"),
                    children=(
                        A("flaky-test-detector", "Spots flaky tests in {v} CI runs.", R.LOW, _s("github.actions:read")),
                    ),
                ),
            ),
        ),
        (
            ("payments-api", "arjun-mehta"),
            ("ledger-service", "hannah-kowalski"),
            ("web-dashboard", "lucy-chen"),
            ("mobile-app", "ava-richardson"),
            ("platform-infra", "noah-fischer"),
        ),
    ),
    Family(
        A(
            "dependency-updater",
            "Opens dependency-upgrade pull requests on {v}.",
            R.MEDIUM,
            _s("github.repos:read,write", "github.actions:run"),
            children=(
                A("changelog-reader", "Reads upstream changelogs for {v} upgrades.", R.LOW, _s("github.repos:read")),
            ),
        ),
        (("payments-api", "lucy-chen"), ("web-dashboard", "mateo-silva"), ("platform-infra", "ben-cohen")),
    ),
    Family(
        A(
            "incident-responder",
            "First responder for {v} incidents: acknowledges pages, gathers signals, drafts updates.",
            R.HIGH,
            _s(
                "pagerduty.incidents:read,acknowledge",
                "datadog.metrics:read",
                "sentry.errors:read",
                "slack.messages:send",
            ),
            own=_s("statuspage.incidents:read"),
            children=(
                A(
                    "log-summariser",
                    "Summarises {v} errors and metrics around an incident.",
                    R.LOW,
                    _s("datadog.metrics:read", "sentry.errors:read"),
                    own=_s("datadog.metrics:read"),
                ),
                A(
                    "status-drafter",
                    "Drafts {v} incident updates for the incident channel.",
                    R.MEDIUM,
                    _s("pagerduty.incidents:read", "slack.messages:send"),
                    children=(
                        A("timeline-writer", "Keeps the {v} incident timeline.", R.LOW, _s("pagerduty.incidents:read")),
                    ),
                ),
            ),
        ),
        (("payments", "olivia-brown"), ("platform", "fatima-zahra")),
    ),
    Family(
        A(
            "release-notes-writer",
            "Writes {v} release notes from merged pull requests and Jira issues.",
            R.LOW,
            _s("github.repos:read", "jira.issues:read", "confluence.pages:write"),
            own=_s("slack.messages:send"),
        ),
        (("payments", "sofia-marin"), ("platform", "kenji-watanabe")),
    ),
    Family(
        A(
            "deploy-assistant",
            "Deploys {v} to staging and reports the result.",
            R.HIGH,
            _s("aws.staging:read,deploy", "github.actions:run", "slack.messages:send"),
            own=_s("aws.staging:read"),
            children=(
                A(
                    "smoke-tester",
                    "Runs smoke tests against {v} on staging.",
                    R.MEDIUM,
                    _s("aws.staging:read", "github.actions:run"),
                ),
            ),
        ),
        (("payments-api", "arjun-mehta"), ("web-dashboard", "mateo-silva")),
    ),
    Family(
        A(
            "prod-deploy-gate",
            "Gates production deploys of {v}: checks canaries and rolls forward or back.",
            R.CRITICAL,
            _s("aws.production:read,deploy", "github.actions:read", "datadog.metrics:read", "slack.messages:send"),
            children=(
                A(
                    "canary-analyst",
                    "Compares {v} canary metrics with the baseline.",
                    R.HIGH,
                    _s("aws.production:read", "datadog.metrics:read"),
                ),
            ),
        ),
        (("payments-api", "noah-fischer"), ("ledger-service", "olivia-brown")),
    ),
    Family(
        A(
            "jira-groomer",
            "Grooms the {v} backlog: de-duplicates, labels and closes stale issues.",
            R.LOW,
            _s("jira.issues:read,write,comment,transition"),
        ),
        (("payments", "sofia-marin"), ("platform", "ben-cohen"), ("data", "felix-wagner")),
    ),
    Family(
        A(
            "on-call-digest",
            "Posts a daily {v} on-call digest.",
            R.LOW,
            _s("pagerduty.incidents:read", "sentry.errors:read", "slack.messages:send"),
            own=_s("pagerduty.incidents:read"),
        ),
        (("platform", "fatima-zahra"),),
    ),
    # Finance
    Family(
        A(
            "invoice-reconciler",
            "Reconciles {v} invoices against the ledger and posts matching journal entries.",
            R.HIGH,
            _s("billing.invoices:read", "netsuite.journal:read,post", "payments.ledger:read"),
            own=_s("billing.invoices:read"),
            children=(
                A(
                    "ledger-matcher",
                    "Matches {v} payments to open invoices.",
                    R.MEDIUM,
                    _s("payments.ledger:read", "netsuite.journal:read"),
                    children=(
                        A(
                            "anomaly-flagger",
                            "Flags unusual {v} ledger movements.",
                            R.MEDIUM,
                            _s("payments.ledger:read"),
                        ),
                    ),
                ),
                A(
                    "journal-poster",
                    "Posts {v} reconciliation journal entries.",
                    R.HIGH,
                    _s("netsuite.journal:read,post"),
                ),
            ),
        ),
        (("eu", "chloe-dubois"), ("us", "sara-lindqvist"), ("uk", "oliver-grant")),
    ),
    Family(
        A(
            "dunning-assistant",
            "Chases overdue {v} invoices with reminders.",
            R.MEDIUM,
            _s("billing.invoices:read,send", "email.outbound:send"),
            own=_s("email.outbound:send"),
            children=(A("reminder-composer", "Writes {v} payment reminders.", R.LOW, _s("billing.invoices:read")),),
        ),
        (("smb", "sara-lindqvist"), ("enterprise", "chloe-dubois")),
    ),
    Family(
        A(
            "expense-auditor",
            "Audits {v} expense reports against policy and flags exceptions.",
            R.MEDIUM,
            _s("expenses.reports:read,flag"),
            children=(A("receipt-ocr", "Reads {v} receipts.", R.LOW, _s("expenses.reports:read")),),
        ),
        (("monthly", "oliver-grant"), ("travel", "chloe-dubois")),
    ),
    Family(
        A(
            "ap-payment-preparer",
            "Prepares {v} payment runs for approval.",
            R.CRITICAL,
            _s("payments.transfers:read,initiate"),
            children=(
                A(
                    "vendor-bank-verifier",
                    "Verifies {v} bank details before payment.",
                    R.HIGH,
                    _s("payments.transfers:read"),
                ),
            ),
        ),
        (("vendors", "ethan-wright"),),
    ),
    Family(
        A(
            "month-end-close-assistant",
            "Runs the {v} month-end close checklist.",
            R.HIGH,
            _s("netsuite.journal:read,post", "billing.invoices:read", "payments.ledger:read"),
            children=(
                A(
                    "accrual-calculator",
                    "Calculates {v} accruals.",
                    R.MEDIUM,
                    _s("netsuite.journal:read", "payments.ledger:read"),
                    children=(
                        A("variance-explainer", "Explains {v} budget variances.", R.LOW, _s("netsuite.journal:read")),
                    ),
                ),
            ),
        ),
        (("group", "oliver-grant"),),
    ),
    Family(
        A(
            "forecast-builder",
            "Builds the {v} revenue forecast.",
            R.MEDIUM,
            _s("warehouse.analytics:read,query", "crm.opportunities:read"),
            children=(A("scenario-modeller", "Models {v} forecast scenarios.", R.LOW, _s("warehouse.analytics:read")),),
        ),
        (("quarterly", "victor-nguyen"),),
    ),
    Family(
        A(
            "audit-evidence-collector",
            "Collects {v} control evidence from finance systems.",
            R.MEDIUM,
            _s("payments.ledger:read", "netsuite.journal:read", "expenses.reports:read"),
        ),
        (("sox", "rachel-stein"),),
    ),
    # Sales
    Family(
        A(
            "lead-enricher",
            "Enriches {v} leads with firmographics.",
            R.MEDIUM,
            _s("crm.contacts:read,write"),
            children=(A("company-researcher", "Researches {v} prospect companies.", R.LOW, _s("crm.contacts:read")),),
        ),
        (("emea", "nina-petersen"), ("inbound", "omar-farouk")),
    ),
    Family(
        A(
            "meeting-prep",
            "Prepares {v} account briefs before customer meetings.",
            R.LOW,
            _s("crm.contacts:read", "crm.opportunities:read", "calendar.events:read"),
            own=_s("calendar.events:read"),
        ),
        (("emea", "jack-thompson"), ("enterprise", "isabel-rossi"), ("midmarket", "nina-petersen")),
    ),
    Family(
        A(
            "outbound-sequencer",
            "Runs {v} outbound e-mail sequences.",
            R.HIGH,
            _s("crm.contacts:read", "email.outbound:send"),
            children=(
                A("email-personaliser", "Personalises {v} outreach e-mails.", R.MEDIUM, _s("crm.contacts:read")),
            ),
        ),
        (("emea", "omar-farouk"), ("fintech", "jack-thompson")),
    ),
    Family(
        A(
            "pipeline-forecaster",
            "Forecasts the {v} pipeline and flags slipping deals.",
            R.MEDIUM,
            _s("crm.opportunities:read", "warehouse.analytics:read,query"),
            children=(A("deal-risk-scorer", "Scores {v} deal risk.", R.LOW, _s("crm.opportunities:read")),),
        ),
        (("weekly", "kevin-obrien"),),
    ),
    Family(
        A(
            "crm-deduplicator",
            "Merges duplicate {v} in the CRM.",
            R.HIGH,
            _s("crm.contacts:read,write,delete"),
            children=(A("duplicate-finder", "Finds duplicate {v}.", R.LOW, _s("crm.contacts:read")),),
        ),
        (("contacts", "laura-garcia"),),
    ),
    Family(
        A(
            "proposal-drafter",
            "Drafts {v} proposals from opportunity data.",
            R.MEDIUM,
            _s("crm.opportunities:read", "docusign.envelopes:read"),
        ),
        (("enterprise", "isabel-rossi"),),
    ),
    # Security
    Family(
        A(
            "secret-rotator",
            "Rotates {v} database and API credentials on schedule.",
            R.CRITICAL,
            _s("vault.secrets:read,rotate"),
            own=_s("vault.secrets:rotate"),
            children=(
                A(
                    "rotation-verifier",
                    "Verifies services picked up rotated {v} secrets.",
                    R.HIGH,
                    _s("vault.secrets:read"),
                ),
            ),
        ),
        (("prod", "paul-andersen"), ("staging", "tariq-aziz")),
    ),
    Family(
        A(
            "vuln-triage",
            "Triages dependency and code-scanning alerts on {v}.",
            R.MEDIUM,
            _s("github.repos:read,comment", "jira.issues:write"),
            children=(A("cve-matcher", "Matches CVEs to {v} dependencies.", R.LOW, _s("github.repos:read")),),
        ),
        (("payments-api", "tariq-aziz"), ("platform-infra", "emily-ross")),
    ),
    Family(
        A(
            "siem-alert-triage",
            "Triages {v} SIEM alerts and escalates real ones.",
            R.HIGH,
            _s("siem.alerts:read,triage", "okta.users:read", "slack.messages:send"),
            own=_s("siem.alerts:read"),
            children=(
                A(
                    "alert-enricher",
                    "Enriches {v} alerts with identity context.",
                    R.MEDIUM,
                    _s("siem.alerts:read", "okta.users:read"),
                    children=(
                        A("ioc-lookup", "Looks up {v} indicators of compromise.", R.LOW, _s("siem.alerts:read")),
                    ),
                ),
            ),
        ),
        (("tier1", "emily-ross"), ("cloud", "tariq-aziz")),
    ),
    Family(
        A(
            "access-review-assistant",
            "Prepares {v} access reviews: who has what, and what is unused.",
            R.HIGH,
            _s("okta.users:read", "hr.employees:read", "slack.messages:send"),
            own=_s("okta.users:read"),
            children=(
                A(
                    "leaver-detector",
                    "Compares {v} HR leavers with live accounts.",
                    R.MEDIUM,
                    _s("okta.users:read", "hr.employees:read"),
                ),
            ),
        ),
        (("quarterly", "nadia-haddad"),),
    ),
    Family(
        A(
            "phishing-triage",
            "Triages reported phishing from the {v}.",
            R.MEDIUM,
            _s("siem.alerts:read,triage", "slack.messages:read"),
        ),
        (("security mailbox", "emily-ross"),),
    ),
    # Legal
    Family(
        A(
            "contract-reviewer",
            "Reviews {v} contracts against the playbook and proposes redlines.",
            R.HIGH,
            _s("legal.contracts:read,write", "docusign.envelopes:read"),
            children=(
                A(
                    "redline-drafter",
                    "Drafts {v} redlines.",
                    R.MEDIUM,
                    _s("legal.contracts:read,write"),
                    children=(
                        A(
                            "clause-extractor",
                            "Extracts key clauses from {v} contracts.",
                            R.LOW,
                            _s("legal.contracts:read"),
                        ),
                    ),
                ),
            ),
        ),
        (("vendor-msa", "michael-shaw"), ("customer-dpa", "helen-marsh")),
    ),
    Family(
        A(
            "nda-generator",
            "Generates and sends {v} NDAs for signature.",
            R.MEDIUM,
            _s("legal.contracts:write", "docusign.envelopes:send"),
        ),
        (("sales", "michael-shaw"),),
    ),
    Family(
        A(
            "regulatory-monitor",
            "Watches {v} regulatory updates and summarises them.",
            R.LOW,
            _s("sanctions.screening:read", "confluence.pages:read"),
        ),
        (("eu-psd3", "anna-kim"),),
    ),
    # HR
    Family(
        A(
            "onboarding-coordinator",
            "Coordinates {v}: accounts, channels, first-week calendar.",
            R.MEDIUM,
            _s("hr.employees:read", "slack.channels:create", "calendar.events:write", "email.outbound:send"),
            children=(
                A(
                    "welcome-pack-sender",
                    "Sends welcome packs to {v}.",
                    R.LOW,
                    _s("hr.employees:read", "email.outbound:send"),
                ),
            ),
        ),
        (("new-joiners", "sophie-turner"),),
    ),
    Family(
        A(
            "candidate-screener",
            "Screens {v} applicants against the role profile.",
            R.HIGH,
            _s("recruiting.candidates:read,write"),
            children=(
                A(
                    "cv-parser",
                    "Parses {v} CVs.",
                    R.MEDIUM,
                    _s("recruiting.candidates:read"),
                    own=_s("recruiting.candidates:read"),
                ),
            ),
        ),
        (("engineering", "lucas-moreau"), ("sales", "jasmine-patel")),
    ),
    Family(
        A(
            "payroll-checker",
            "Checks the {v} payroll run for anomalies before approval.",
            R.CRITICAL,
            _s("hr.payroll:read", "hr.employees:read"),
        ),
        (("monthly", "grace-liu"),),
    ),
    Family(
        A(
            "interview-scheduler",
            "Schedules {v} interviews.",
            R.LOW,
            _s("calendar.events:read,write", "recruiting.candidates:read"),
        ),
        (("engineering", "lucas-moreau"),),
    ),
    # Data
    Family(
        A(
            "sql-analyst",
            "Answers {v} questions with SQL on the warehouse.",
            R.MEDIUM,
            _s("warehouse.analytics:read,query", "warehouse.transactions:read,query"),
            own=_s("warehouse.analytics:read"),
            children=(
                A(
                    "query-writer",
                    "Writes {v} warehouse queries.",
                    R.MEDIUM,
                    _s("warehouse.analytics:query", "warehouse.transactions:query"),
                    children=(
                        A(
                            "query-validator",
                            "Validates {v} queries before they run.",
                            R.LOW,
                            _s("warehouse.analytics:query"),
                        ),
                    ),
                ),
                A("chart-builder", "Builds {v} charts from query results.", R.LOW, _s("warehouse.analytics:read")),
            ),
        ),
        (("finance", "felix-wagner"), ("growth", "priyanka-rao"), ("risk", "clara-jensen")),
    ),
    Family(
        A(
            "pii-redactor",
            "Redacts customer PII from {v} before they leave the warehouse.",
            R.CRITICAL,
            _s("warehouse.customers_pii:read", "warehouse.analytics:read"),
            children=(A("redaction-verifier", "Verifies {v} redactions.", R.HIGH, _s("warehouse.customers_pii:read")),),
        ),
        (("exports", "clara-jensen"),),
    ),
    Family(
        A(
            "data-quality-monitor",
            "Monitors {v} data quality and files issues.",
            R.LOW,
            _s("warehouse.transactions:read", "warehouse.analytics:read", "slack.messages:send", "jira.issues:write"),
            own=_s("warehouse.analytics:read"),
            children=(
                A(
                    "schema-drift-detector",
                    "Detects {v} schema drift.",
                    R.LOW,
                    _s("warehouse.transactions:read", "warehouse.analytics:read"),
                    own=_s("warehouse.transactions:read"),
                ),
            ),
        ),
        (("nightly", "clara-jensen"), ("payments-ledger", "ahmed-hassan")),
    ),
    Family(
        A("churn-predictor", "Predicts {v} churn from usage.", R.MEDIUM, _s("warehouse.analytics:read,query")),
        (("smb", "priyanka-rao"),),
    ),
    Family(
        A("dbt-pr-reviewer", "Reviews {v} dbt model changes.", R.LOW, _s("github.repos:read,comment")),
        (("analytics", "felix-wagner"),),
    ),
    # Risk
    Family(
        A(
            "fraud-alert-triage",
            "Triages {v} fraud alerts and escalates the real ones.",
            R.HIGH,
            _s("fraud.alerts:read,triage,escalate", "payments.ledger:read"),
            own=_s("fraud.alerts:read"),
            children=(
                A(
                    "transaction-profiler",
                    "Profiles {v} transactions behind an alert.",
                    R.MEDIUM,
                    _s("payments.ledger:read", "fraud.alerts:read"),
                    children=(
                        A("velocity-checker", "Checks {v} payment velocity.", R.LOW, _s("payments.ledger:read")),
                    ),
                ),
                A("case-summariser", "Summarises {v} fraud cases.", R.LOW, _s("fraud.alerts:read")),
            ),
        ),
        (("cards", "leila-karimi"), ("bank-transfers", "george-mensah")),
    ),
    Family(
        A(
            "kyc-document-checker",
            "Checks {v} merchant KYC documents; approves clean cases.",
            R.CRITICAL,
            _s("kyc.verifications:read,approve,reject", "sanctions.screening:read,screen"),
            own=_s("sanctions.screening:screen"),
            children=(
                A(
                    "id-document-verifier",
                    "Verifies {v} identity documents.",
                    R.HIGH,
                    _s("kyc.verifications:read,reject"),
                    children=(
                        A("liveness-checker", "Checks {v} selfie liveness.", R.MEDIUM, _s("kyc.verifications:read")),
                    ),
                ),
                A(
                    "sanctions-screener",
                    "Screens {v} directors against sanctions lists.",
                    R.HIGH,
                    _s("sanctions.screening:read,screen"),
                ),
            ),
        ),
        (("eu", "sam-ortiz"), ("uk", "hugo-bernard")),
    ),
    Family(
        A(
            "chargeback-responder",
            "Answers {v} chargebacks with evidence.",
            R.HIGH,
            _s("zendesk.tickets:read,comment", "fraud.alerts:read", "payments.ledger:read"),
            children=(
                A(
                    "evidence-gatherer",
                    "Gathers {v} chargeback evidence.",
                    R.MEDIUM,
                    _s("payments.ledger:read", "zendesk.tickets:read"),
                ),
            ),
        ),
        (("cards", "leila-karimi"),),
    ),
    # Executive
    Family(
        A(
            "board-pack-assistant",
            "Assembles the {v} board pack.",
            R.MEDIUM,
            _s("warehouse.analytics:read", "crm.opportunities:read", "confluence.pages:read"),
        ),
        (("quarterly", "maya-okonkwo"),),
    ),
    Family(
        A(
            "calendar-assistant",
            "Manages the {v} calendar.",
            R.MEDIUM,
            _s("calendar.events:read,write", "slack.messages:read"),
        ),
        (("ceo office", "maya-okonkwo"),),
    ),
)

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
SUSPEND_REASONS = (
    "Repeated out-of-scope attempts; suspended pending review",
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


def _scopes_of(person: Person) -> list[str]:
    wanted = set(BASE_ACCESS) if person.profiles else set()
    for profile in person.profiles:
        wanted.update(PROFILES[profile])
    return sorted(wanted)


def check_catalogue() -> None:
    """Fail loudly if the catalogue contradicts itself (a sub-agent wider than its parent, a sponsor
    lacking what their agent needs, a name used twice)."""
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
        for spec in family.spec.walk():
            for scope in (*spec.scopes, *spec.own):
                known(scope)
            for child in spec.children:
                if not set(child.scopes) < set(spec.scopes):
                    raise ValueError(f"{child.name} is not strictly narrower than {spec.name}")
        for variant, sponsor in family.variants:
            lacking = set(family.spec.scopes) - set(_scopes_of(PEOPLE_BY_KEY[sponsor]))
            if lacking:
                raise ValueError(f"{sponsor} lacks {sorted(lacking)} for {family.spec.name}")
            for spec in family.spec.walk():
                name = _agent_name(spec, variant)
                if name in names:
                    raise ValueError(f"agent name {name} used twice")
                names.add(name)


def _agent_name(spec: AgentSpec, variant: str) -> str:
    return f"{spec.name}-{variant.replace(' ', '-')}"


# --- The replay -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    """One agent of a deployed family and its current links."""

    spec: AgentSpec
    name: str
    parent: _Node | None
    agent_id: int = 0
    link_id: int | None = None
    key_id: int | None = None
    children: list[_Node] = field(default_factory=list)

    def walk(self) -> Iterable[_Node]:
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass(slots=True)
class _Deployment:
    spec: AgentSpec
    variant: str
    sponsor: str
    day: int
    fate: str
    root: _Node
    human_id: int = 0
    stopped: bool = False  # no more renewals, rotations or grant renewals

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def renews(self) -> bool:
        return not self.stopped and self.fate != "lapse"


class _Timeline:
    """A queue of dated actions replayed in time order with the clock travelled to each one."""

    def __init__(self, start: datetime, end: datetime, traveller: time_machine.Traveller | None = None) -> None:
        self.start = start
        self.now = start
        self.end = end
        self._queue: list[tuple[datetime, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._traveller = traveller

    def day(self, day: int, hour: int, minute: int = 0) -> datetime:
        return self.start + timedelta(days=day, hours=hour, minutes=minute)

    def at(self, when: datetime, action: Callable[[], None]) -> None:
        if when < self.end:
            heapq.heappush(self._queue, (when, next(self._order), action))

    def _move(self, when: datetime) -> None:
        self.now = when
        assert self._traveller is not None
        self._traveller.move_to(when)

    def pause(self, seconds: float) -> None:
        # Spread consecutive changes a little; never past the end of the replayed history.
        self._move(max(self.now, min(self.now + timedelta(seconds=seconds), self.end - timedelta(seconds=1))))

    def run(self, traveller: time_machine.Traveller) -> None:
        self._traveller = traveller
        while self._queue:
            when, _, action = heapq.heappop(self._queue)
            if when > self.now:
                self._move(when)
            action()


def _agent_actor(node: _Node) -> Actor:
    return Actor(kind=ActorKind.AGENT, label=node.name, id=str(node.agent_id))


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


@dataclass(slots=True)
class SeedResult:
    created: bool
    seconds: float = 0.0
    counts: dict[str, str] = field(default_factory=dict)
    logins: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class _Seeder:
    def __init__(self, *, start: datetime, end: datetime) -> None:
        self.rng = random.Random(SEED)  # noqa: S311 - a reproducible demo, not a secret
        self.tl = _Timeline(start, end)
        self.humans: dict[str, int] = {}
        self.resources: dict[str, Resource] = {}
        self.users: dict[str, User] = {}
        self.deployments: list[_Deployment] = []
        self.by_sponsor: dict[str, list[_Deployment]] = {}
        self.notes: list[str] = []
        self.admin = SEED_ACTOR
        self.reviewer = SEED_ACTOR

    # -- helpers ------------------------------------------------------------------------------

    def human(self, key: str) -> Human:
        return Human.objects.get(pk=self.humans[key])

    def agent(self, node: _Node) -> Agent:
        return Agent.objects.get(pk=node.agent_id)

    def pause(self, low: int = 3, high: int = 40) -> None:
        self.tl.pause(self.rng.randint(low, high))

    def office(self, moment: datetime) -> datetime:
        """The same day, moved into office hours (09:00 to 17:59)."""
        if moment.hour < 9:
            return moment.replace(hour=9, minute=self.rng.randint(0, 59))
        if moment.hour >= 18:
            return moment.replace(hour=17, minute=self.rng.randint(0, 59))
        return moment

    def office_time(self, day: int) -> datetime:
        return self.tl.day(day, self.rng.randint(9, 16), self.rng.randint(0, 59))

    def status_on(self, person: Person, day: int) -> str:
        status: str = HumanStatus.ACTIVE
        for change_day, new_status, _ in person.changes:
            if change_day <= day:
                status = new_status
        return status

    def scope_parts(self, scope: str) -> tuple[Resource, str]:
        name, _, action = scope.partition(":")
        return self.resources[name], action

    def reviewer_for(self, deployment: _Deployment) -> Actor:
        person = PEOPLE_BY_KEY[deployment.sponsor]
        return self.reviewer if person.manager == "elena-petrova" else self.admin

    # -- the plan -----------------------------------------------------------------------------

    def plan(self) -> None:
        tl = self.tl
        tl.at(tl.day(0, 9, 0), self.create_console_users)
        tl.at(tl.day(0, 9, 20), self.import_people)
        tl.at(tl.day(0, 11, 0), self.register_resources)
        tl.at(tl.day(0, 14, 0), self.grant_baseline_access)
        for day in range(1, HISTORY_DAYS):
            tl.at(tl.day(day, 2, 0), self.sweep)
        for person in PEOPLE:
            if person.joins_day:
                tl.at(tl.day(person.joins_day, 8, 30), partial(self.join, person))
            for day, status, reason in person.changes:
                if day == 0:
                    continue
                tl.at(tl.day(day, 8, 15), partial(self.change_status, person, status, reason))
        for key, scope, day, by_reviewer, reason in HUMAN_GRANT_REVOCATIONS:
            tl.at(self.office_time(day), partial(self.revoke_human_grant, key, scope, by_reviewer, reason))
        self.plan_deployments()

    def plan_deployments(self) -> None:
        rng = self.rng
        pairs = [(family, variant, sponsor) for family in FAMILIES for variant, sponsor in family.variants]
        rng.shuffle(pairs)
        last_day = HISTORY_DAYS - 4
        for index, (family, variant, sponsor) in enumerate(pairs):
            person = PEOPLE_BY_KEY[sponsor]
            day = 2 + index * (last_day - 2) // len(pairs)
            for _ in range(200):
                bad = [
                    d
                    for d in range(day, day + 4)
                    if d < person.joins_day + 1 or self.status_on(person, d) != HumanStatus.ACTIVE
                ]
                if not bad:
                    break
                day = rng.randint(max(2, person.joins_day + 1), last_day)
            else:
                raise ValueError(f"no day when {sponsor} can sponsor {family.spec.name}")
            name = _agent_name(family.spec, variant)
            fate = FATE_OVERRIDES.get(name) or rng.choices(FATES, FATE_WEIGHTS)[0]
            deployment = _Deployment(
                family.spec, variant, sponsor, day, fate, root=self.tree(family.spec, variant, None)
            )
            self.deployments.append(deployment)
            self.by_sponsor.setdefault(sponsor, []).append(deployment)
            self.tl.at(self.office_time(day), partial(self.onboard, deployment))

    def tree(self, spec: AgentSpec, variant: str, parent: _Node | None) -> _Node:
        node = _Node(spec, _agent_name(spec, variant), parent)
        node.children = [self.tree(child, variant, node) for child in spec.children]
        return node

    # -- day 0: users, people, resources, baseline access ----------------------------------------

    def create_console_users(self) -> None:
        hashed = make_password(DEMO_PASSWORD)  # once: the hasher is deliberately slow
        for username, role, key in DEMO_USERS:
            person = PEOPLE_BY_KEY[key]
            first, _, last = person.name.partition(" ")
            user = User.objects.filter(username=username).first()
            created = user is None
            if user is None:
                user = User.objects.create(
                    username=username, email=person.email, first_name=first, last_name=last, password=hashed
                )
            else:
                self.notes.append(f"console user {username!r} already existed: its password was left unchanged")
            user.groups.add(Group.objects.get(name=role))
            self.users[key] = user
            # Who may use the console, and as what, is evidence an auditor asks for.
            audit_append(
                actor=SEED_ACTOR,
                action="console_user.create" if created else "console_user.add_role",
                target=Target(type="user", id=str(user.pk), label=username),
                context={"username": username, "roles": [role], "human": person.email},
            )
            self.pause(1, 5)
        self.admin = Actor.user(self.users["nadia-haddad"])
        self.reviewer = Actor.user(self.users["elena-petrova"])

    def import_people(self) -> None:
        for index, person in enumerate(PEOPLE, start=1):
            if person.joins_day:
                continue
            self.create_person(person, index)
            self.pause(1, 4)
        for person in PEOPLE:
            for day, status, reason in person.changes:
                if day == 0:
                    services.human_set_status(
                        actor=SCIM_ACTOR, human=self.human(person.key), status=status, reason=reason
                    )
                    self.pause(1, 4)

    def create_person(self, person: Person, index: int) -> None:
        manager = self.human(person.manager) if person.manager else None
        human = services.human_create(
            actor=SCIM_ACTOR,
            email=person.email,
            name=person.name,
            department=person.department,
            title=person.title,
            manager=manager,
            external_id=f"WD-{10000 + index}",
            user=self.users.get(person.key),
        )
        self.humans[person.key] = human.pk

    def register_resources(self) -> None:
        for spec in RESOURCES:
            self.resources[spec.name] = services.resource_create(
                actor=self.admin,
                name=spec.name,
                owner=self.human(spec.owner),
                actions=spec.actions,
                kind=spec.kind,
                sensitivity=spec.sensitivity,
                description=spec.description,
            )
            self.pause(20, 90)

    def grant_baseline_access(self) -> None:
        for person in PEOPLE:
            if person.joins_day or self.status_on(person, 0) != HumanStatus.ACTIVE:
                continue
            self.grant_person(person)

    def grant_person(self, person: Person) -> None:
        human = self.human(person.key)
        for scope in _scopes_of(person):
            resource, action = self.scope_parts(scope)
            # Standing access to critical systems is time-bound even for humans.
            expires = self.tl.now + timedelta(days=120) if resource.sensitivity == Sensitivity.CRITICAL else None
            services.grant_create(
                actor=self.admin,
                holder=human,
                resource=resource,
                action=action,
                expires_at=expires,
                justification=f"Baseline access for {person.title} ({person.department})",
            )
            self.pause(1, 6)

    # -- people over time ---------------------------------------------------------------------

    def join(self, person: Person) -> None:
        self.create_person(person, PEOPLE.index(person) + 1)
        self.tl.pause(3600)
        self.grant_person(person)

    def change_status(self, person: Person, status: str, reason: str) -> None:
        human = services.human_set_status(actor=SCIM_ACTOR, human=self.human(person.key), status=status, reason=reason)
        if status == HumanStatus.LEFT:
            self.tl.at(self.office(self.tl.now + timedelta(hours=2)), lambda: self.offboard_leaver(person, human))

    def offboard_leaver(self, person: Person, human: Human) -> None:
        """What the IAM admin does the morning a leaver goes: cut their delegations, hand their agents to
        their manager (suspending the risky ones), revoke their keys and grants."""
        reason = f"Leaver: {person.name} left Halyard"
        for link in list(
            Delegation.objects.filter(root_human=human, parent__isnull=True, status=DelegationStatus.ACTIVE)
        ):
            services.delegation_revoke(actor=self.admin, delegation=link, reason=reason)
            self.pause()
        manager = self.human(person.manager) if person.manager else None
        for deployment in self.by_sponsor.get(person.key, []):
            deployment.stopped = True
            for node in deployment.root.walk():
                if not node.agent_id:
                    continue
                agent = self.agent(node)
                if agent.status != AgentStatus.ACTIVE:
                    continue
                if manager is not None:
                    services.agent_update(actor=self.admin, agent=agent, sponsor=manager)
                    self.pause()
                if node.parent is None and agent.risk_tier in (RiskTier.HIGH, RiskTier.CRITICAL):
                    services.agent_suspend(
                        actor=self.admin, agent=agent, reason=f"{reason}; suspended until the new sponsor reviews it"
                    )
                    self.pause()
                self.revoke_keys(node, f"{reason}; keys withdrawn")
        for grant in Grant.objects.active().filter(holder_human=human):
            services.grant_revoke(actor=self.admin, grant=grant, reason=reason)
            self.pause(1, 4)

    def revoke_human_grant(self, key: str, scope: str, by_reviewer: bool, reason: str) -> None:
        resource, action = self.scope_parts(scope)
        grant = (
            Grant.objects.active().filter(holder_human_id=self.humans[key], resource=resource, action=action).first()
        )
        if grant is not None:
            services.grant_revoke(actor=self.reviewer if by_reviewer else self.admin, grant=grant, reason=reason)

    def sweep(self) -> None:
        services.expire_due(actor=SWEEP_ACTOR)

    # -- agents -------------------------------------------------------------------------------

    def onboard(self, deployment: _Deployment) -> None:
        rng = self.rng
        sponsor = self.human(deployment.sponsor)
        deployment.human_id = sponsor.pk
        root = deployment.root
        agent = services.agent_create(
            actor=self.admin,
            name=root.name,
            sponsor=sponsor,
            purpose=root.spec.purpose.format(v=deployment.variant.replace("-", " ")),
            risk_tier=root.spec.risk,
        )
        root.agent_id = agent.pk
        self.pause()
        self.issue_key(deployment, root, "primary")
        self.grant_own(deployment, root)
        scopes = sorted(set(root.spec.scopes) & human_held_scopes(sponsor))
        link = services.delegation_create(
            actor=self.admin,
            delegate=agent,
            root_human=sponsor,
            scopes=scopes,
            expires_at=self.tl.now + timedelta(days=rng.choice((14, 21, 28))),
            purpose=f"{sponsor.name} delegates {root.name}: {agent.purpose}",
            max_depth=root.spec.height,
        )
        root.link_id = link.pk
        self.pause()
        self.schedule_root_renewal(deployment, link)
        for child in root.children:
            self.spawn(deployment, child)
        if deployment.name in JIT:
            self.tl.at(self.office(self.tl.now + timedelta(days=rng.randint(2, 9))), lambda: self.jit(deployment))
        self.schedule_fate(deployment)

    def spawn(self, deployment: _Deployment, node: _Node) -> None:
        """The parent agent registers its sub-agent and delegates to it, then the sub-agent does the
        same for its own sub-agents."""
        assert node.parent is not None
        parent_agent = self.agent(node.parent)
        agent = services.agent_create(
            actor=Actor.agent(parent_agent),
            name=node.name,
            parent=parent_agent,
            purpose=node.spec.purpose.format(v=deployment.variant.replace("-", " ")),
            risk_tier=node.spec.risk,
        )
        node.agent_id = agent.pk
        self.pause(1, 10)
        if self.rng.random() < 0.3:
            # Sub-agents mostly act on delegation tokens; the few with keys often let them lapse.
            self.issue_key(deployment, node, "primary", rotates=self.rng.random() < 0.5)
        self.grant_own(deployment, node)
        self.delegate(deployment, node)
        if self.rng.random() < 0.05:
            self.tl.at(self.tl.now + timedelta(days=self.rng.randint(3, 20)), lambda: self.retire(node))
        for child in node.children:
            self.spawn(deployment, child)

    def delegate(self, deployment: _Deployment, node: _Node) -> None:
        """Give ``node`` a fresh link under its parent's current link (shorter, no wider), then its
        own sub-agents likewise."""
        assert node.parent is not None
        if node.parent.link_id is None:
            return
        parent_link = Delegation.objects.get(pk=node.parent.link_id)
        if not parent_link.is_in_force() or parent_link.expires_at - self.tl.now < timedelta(days=1, hours=12):
            return  # the parent's own renewal, due soon, re-delegates to the whole subtree
        scopes = sorted(set(node.spec.scopes) & parent_link.scope_set)
        if not scopes:
            return
        rng = self.rng
        # Shorter at each hop: a few days, and always some hours before the parent link runs out.
        expires = _minute(
            min(
                self.tl.now + timedelta(days=rng.choice((5, 7, 10)), hours=rng.randint(0, 12)),
                parent_link.expires_at - timedelta(hours=rng.randint(1, 12), minutes=rng.randint(0, 59)),
            )
        )
        try:
            link = services.delegation_create(
                actor=_agent_actor(node.parent),
                delegate=Agent(pk=node.agent_id),
                parent=parent_link,
                scopes=scopes,
                expires_at=expires,
                purpose=f"{node.parent.name} hands {node.name} part of its task: "
                + node.spec.purpose.format(v=deployment.variant.replace("-", " ")),
                max_depth=node.spec.height,
            )
        except ValidationFailed as refusal:
            # Something up the chain is no longer usable (an agent suspended, the human away or
            # without the grant): the parent agent cannot hand anything on, as in production.
            if refusal.code in CHAIN_REFUSALS:
                return
            raise
        node.link_id = link.pk
        self.pause(1, 8)
        # The parent agent re-issues the link shortly before it runs out.
        self.tl.at(expires - timedelta(hours=rng.randint(1, 8)), lambda: self.renew_child(deployment, node, link.pk))
        if rng.random() < 0.03:
            self.tl.at(self.tl.now + timedelta(hours=rng.randint(4, 60)), lambda: self.release_child(node, link.pk))
        for child in node.children:
            if child.agent_id:  # not yet registered while its parent is being set up
                self.delegate(deployment, child)

    def renew_child(self, deployment: _Deployment, node: _Node, link_id: int) -> None:
        if node.link_id != link_id:
            return  # superseded by a renewal higher up
        link = Delegation.objects.get(pk=link_id)
        if link.status != DelegationStatus.ACTIVE:
            return
        self.delegate(deployment, node)

    def release_child(self, node: _Node, link_id: int) -> None:
        """The parent agent ends its sub-agent's task early."""
        assert node.parent is not None
        link = Delegation.objects.get(pk=link_id)
        if node.link_id != link_id or not link.is_in_force() or not self.agent(node.parent).is_active:
            return
        services.delegation_revoke(
            actor=Actor.agent(self.agent(node.parent)), delegation=link, reason="Task complete; sub-agent released"
        )
        node.link_id = None

    def retire(self, node: _Node) -> None:
        agent = self.agent(node)
        if agent.is_active:
            services.agent_suspend(actor=self.admin, agent=agent, reason=self.rng.choice(SUB_AGENT_SUSPEND_REASONS))
            self.pause()
            self.revoke_keys(node, "Agent suspended")

    def schedule_root_renewal(self, deployment: _Deployment, link: Delegation) -> None:
        if not deployment.renews:
            return
        when = self.office(link.expires_at - timedelta(hours=self.rng.randint(20, 72)))
        self.tl.at(max(when, self.tl.now), lambda: self.renew_root(deployment, link.pk))

    def renew_root(self, deployment: _Deployment, link_id: int) -> None:
        root = deployment.root
        if not deployment.renews or root.link_id != link_id:
            return
        human = Human.objects.get(pk=deployment.human_id)
        agent = self.agent(root)
        if human.status == HumanStatus.LEFT or agent.status != AgentStatus.ACTIVE:
            return
        if human.status == HumanStatus.SUSPENDED:
            # On leave: try again tomorrow; the chain lapses meanwhile.
            self.tl.at(self.office(self.tl.now + timedelta(days=1)), lambda: self.renew_root(deployment, link_id))
            return
        scopes = sorted(set(root.spec.scopes) & human_held_scopes(human))
        if not scopes:
            return
        old = Delegation.objects.get(pk=link_id)
        link = services.delegation_create(
            actor=self.admin,
            delegate=agent,
            root_human=human,
            scopes=scopes,
            expires_at=self.tl.now + timedelta(days=self.rng.choice((14, 21, 28))),
            purpose=f"Renewal: {human.name} delegates {root.name}: {agent.purpose}",
            max_depth=root.spec.height,
        )
        root.link_id = link.pk
        self.pause()
        for child in root.children:
            self.delegate(deployment, child)
        if old.is_in_force() and self.rng.random() < 0.3:
            services.delegation_revoke(actor=self.admin, delegation=old, reason=f"Superseded by renewal {link.pk}")
            self.pause()
        self.schedule_root_renewal(deployment, link)

    # -- keys and agents' own grants ------------------------------------------------------------

    def issue_key(self, deployment: _Deployment, node: _Node, name: str, *, rotates: bool = True) -> None:
        rng = self.rng
        agent = self.agent(node)
        key, _secret = services.agentkey_create(
            actor=self.admin,
            agent=agent,
            name=name,
            expires_at=self.tl.now + timedelta(days=rng.choice((14, 30, 30, 45, 60))),
        )
        node.key_id = key.pk
        self.pause()
        if rotates and deployment.renews:
            when = self.office(key.expires_at - timedelta(days=rng.randint(1, 4)))
            self.tl.at(max(when, self.tl.now), lambda: self.rotate_key(deployment, node, key.pk))

    def rotate_key(self, deployment: _Deployment, node: _Node, key_id: int) -> None:
        if node.key_id != key_id or not deployment.renews or not self.agent(node).is_active:
            return
        old = AgentKey.objects.get(pk=key_id)
        if old.revoked_at is not None:
            return
        self.issue_key(deployment, node, f"rotation {self.tl.now:%Y-%m-%d}")
        new_prefix = AgentKey.objects.get(pk=node.key_id).prefix
        when = self.tl.now + timedelta(hours=self.rng.randint(12, 36))
        self.tl.at(
            min(when, old.expires_at - timedelta(minutes=5)),
            lambda: self.retire_key(old.pk, f"Rotated: replaced by ck_{new_prefix}_…"),
        )

    def retire_key(self, key_id: int, reason: str) -> None:
        key = AgentKey.objects.get(pk=key_id)
        if key.revoked_at is None and key.expires_at > self.tl.now:
            services.agentkey_revoke(actor=self.admin, key=key, reason=reason)

    def revoke_keys(self, node: _Node, reason: str) -> None:
        for key in AgentKey.objects.active().filter(agent_id=node.agent_id):
            services.agentkey_revoke(actor=self.admin, key=key, reason=reason)
            self.pause(1, 5)

    def grant_own(self, deployment: _Deployment, node: _Node) -> None:
        for scope in node.spec.own:
            self.grant_agent(deployment, node, scope, GrantSource.DIRECT)

    def grant_agent(self, deployment: _Deployment, node: _Node, scope: str, source: str) -> None:
        resource, action = self.scope_parts(scope)
        days = self.rng.choice((14, 21, 30, 45))
        owner = Human.objects.get(pk=resource.owner_id)
        grant = services.grant_create(
            actor=self.admin,
            holder=self.agent(node),
            resource=resource,
            action=action,
            expires_at=self.tl.now + timedelta(days=days),
            source=source,
            justification=(
                f"Standing access for {node.name}, approved by the resource owner {owner.name}"
                if source == GrantSource.DIRECT
                else f"Renewed after {owner.name} recertified it"
            ),
        )
        self.pause()
        assert grant.expires_at is not None
        # Renewed a little after it ran out (a fresh decision, not an extension), in office hours.
        when = self.office(grant.expires_at + timedelta(hours=self.rng.randint(6, 30)))
        when = max(when, grant.expires_at + timedelta(minutes=self.rng.randint(5, 50)))
        self.tl.at(when, lambda: self.renew_agent_grant(deployment, node, scope))

    def renew_agent_grant(self, deployment: _Deployment, node: _Node, scope: str) -> None:
        if not deployment.renews or not self.agent(node).is_active:
            return
        self.grant_agent(deployment, node, scope, GrantSource.RENEWAL)

    def jit(self, deployment: _Deployment) -> None:
        scope, hours, reason = JIT[deployment.name]
        agent = self.agent(deployment.root)
        if not agent.is_active:
            return
        resource, action = self.scope_parts(scope)
        services.grant_create(
            actor=self.admin,
            holder=agent,
            resource=resource,
            action=action,
            expires_at=self.tl.now + timedelta(hours=hours),
            source=GrantSource.JIT,
            justification=reason,
        )

    # -- how each family's story turns ----------------------------------------------------------

    def schedule_fate(self, deployment: _Deployment) -> None:
        rng = self.rng
        if deployment.fate == "lapse":
            deployment.stopped = True
            return
        delay = {"revoke": (5, 20), "suspend": (4, 20), "leak": (3, 15)}.get(deployment.fate)
        if delay is None:
            return
        when = self.office(self.tl.now + timedelta(days=rng.randint(*delay)))
        action = {"revoke": self.withdraw, "suspend": self.suspend, "leak": self.leak}[deployment.fate]
        self.tl.at(when, lambda: action(deployment))

    def withdraw(self, deployment: _Deployment) -> None:
        """A review takes the family's access away: its delegation (cascading), keys and own grants."""
        if deployment.stopped:
            return
        deployment.stopped = True
        reason = self.rng.choice(REVOKE_REASONS)
        actor = self.reviewer_for(deployment)
        root = deployment.root
        for link in list(Delegation.objects.filter(delegate_id=root.agent_id, status=DelegationStatus.ACTIVE)):
            services.delegation_revoke(actor=actor, delegation=link, reason=reason)
            self.pause()
        for node in root.walk():
            if node.agent_id:
                self.revoke_keys(node, reason)
                for grant in Grant.objects.active().filter(holder_agent_id=node.agent_id):
                    services.grant_revoke(actor=actor, grant=grant, reason=reason)
                    self.pause(1, 5)

    def suspend(self, deployment: _Deployment) -> None:
        agent = self.agent(deployment.root)
        if deployment.stopped or not agent.is_active:
            return
        deployment.stopped = True
        services.agent_suspend(actor=self.admin, agent=agent, reason=self.rng.choice(SUSPEND_REASONS))
        self.pause()
        self.revoke_keys(deployment.root, "Agent suspended; key withdrawn as a precaution")

    def leak(self, deployment: _Deployment) -> None:
        root = deployment.root
        if deployment.stopped or root.key_id is None or not self.agent(root).is_active:
            return
        key = AgentKey.objects.get(pk=root.key_id)
        if key.revoked_at is not None or key.expires_at <= self.tl.now:
            return
        services.agentkey_revoke(actor=self.admin, key=key, reason="Secret found in a public CI log; replaced")
        self.pause(30, 300)
        self.issue_key(deployment, root, "replacement after leak")


# --- Entry points ---------------------------------------------------------------------------


def demo_present() -> bool:
    return Human.objects.filter(email__endswith=f"@{DOMAIN}").exists()


def logins() -> list[tuple[str, str]]:
    """(username, who they are) for each demo console user; the username is also the role."""
    rows = []
    for username, _role, key in DEMO_USERS:
        person = PEOPLE_BY_KEY[key]
        rows.append((username, f"{person.name}, {person.title} ({person.department})"))
    return rows


class NotEmpty(Exception):
    """The database already holds an organisation or recent audit history the demo would mix with."""


def seed() -> SeedResult:
    """Create the demo organisation unless it is already there. All or nothing: one transaction."""
    if demo_present():
        return SeedResult(created=False, counts=summary(), logins=logins())
    check_catalogue()
    began = time.monotonic()
    real_now = timezone.now()
    start = real_now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=HISTORY_DAYS)
    end = start + timedelta(days=HISTORY_DAYS)
    if Human.objects.exists():
        raise NotEmpty(
            f"the database already holds an organisation ({Human.objects.count()} humans); "
            "seed_demo only fills an empty one"
        )
    latest = AuditEvent.objects.order_by("-seq").values_list("occurred_at", flat=True).first()
    if latest is not None and latest >= start:
        raise NotEmpty(
            "the audit log already has events from the last six weeks; replaying demo history before them would "
            "put the chain out of time order"
        )
    seeder = _Seeder(start=start, end=end)
    with transaction.atomic():
        seeder.plan()
        with time_machine.travel(start, tick=False) as traveller:
            seeder.tl.run(traveller)
        assert timezone.now() > seeder.tl.now
        # Tidy statuses at the real now: everything whose time ran out since the last nightly sweep.
        while sum(services.expire_due(actor=SWEEP_ACTOR).values()):
            pass
    return SeedResult(
        created=True, seconds=time.monotonic() - began, counts=summary(), logins=logins(), notes=seeder.notes
    )


def summary() -> dict[str, str]:
    """Counts by status, for the command's report."""
    now = timezone.now()

    def by_status(rows: Iterable[str]) -> str:
        counts = Counter(rows)
        return f"{counts.total()} ({', '.join(f'{n} {status}' for status, n in sorted(counts.items()))})"

    def column(model: type[Model], name: str) -> str:
        return by_status(model.objects.values_list(name, flat=True))  # type: ignore[attr-defined]

    sub_agents = Agent.objects.filter(parent__isnull=False)
    deepest = sub_agents.aggregate(depth=Max("depth"))["depth"] or 0
    span = AuditEvent.objects.aggregate(first=Min("occurred_at"), last=Max("occurred_at"))
    head = AuditEvent.objects.aggregate(seq=Max("seq"))["seq"] or 0
    days = (span["last"] - span["first"]).days if span["first"] else 0
    return {
        "humans": column(Human, "status"),
        "resources": column(Resource, "sensitivity"),
        "agents": f"{column(Agent, 'status')}; {sub_agents.count()} sub-agents, nested {deepest} deep",
        "grants": column(Grant, "status"),
        "delegations": column(Delegation, "status"),
        "agent keys": by_status(key.status_at(now) for key in AgentKey.objects.all()),
        "audit events": f"{head} over {days} days",
    }
