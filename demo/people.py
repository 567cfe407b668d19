"""Halyard Payments' people: who works where, for whom, in which job, and what happens to them during
the six replayed weeks (joiners, leave, leavers). Plain data; ``demo.seeder`` turns it into humans."""

from __future__ import annotations

from dataclasses import dataclass

from console import roles
from governance.models import HumanStatus

COMPANY = "Halyard Payments"
DOMAIN = "halyard.example"
DEMO_PASSWORD = "custos-demo"


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


def logins() -> list[tuple[str, str]]:
    """(username, who they are) for each demo console user; the username is also the role."""
    rows = []
    for username, _role, key in DEMO_USERS:
        person = PEOPLE_BY_KEY[key]
        rows.append((username, f"{person.name}, {person.title} ({person.department})"))
    return rows
