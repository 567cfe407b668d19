"""The agent families of Halyard's operating teams: support, engineering, security and data."""

from __future__ import annotations

from demo.agents import AgentSpec as A
from demo.agents import Family
from demo.resources import scopes as _s
from governance.models import RiskTier as R

SUPPORT: tuple[Family, ...] = (
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
)

ENGINEERING: tuple[Family, ...] = (
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
)

SECURITY: tuple[Family, ...] = (
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
)

DATA: tuple[Family, ...] = (
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
)
