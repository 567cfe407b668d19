"""The agent families of Halyard's business teams: finance, sales, legal, HR, risk and the executive office."""

from __future__ import annotations

from demo.agents import AgentSpec as A
from demo.agents import Family
from demo.resources import scopes as _s
from governance.models import RiskTier as R

FINANCE: tuple[Family, ...] = (
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
)

SALES: tuple[Family, ...] = (
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
)

LEGAL: tuple[Family, ...] = (
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
)

HR: tuple[Family, ...] = (
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
)

RISK: tuple[Family, ...] = (
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
)

EXECUTIVE: tuple[Family, ...] = (
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
