"""The evidence each framework item shows: figures from ``figures.Figures`` in words, each linked to
the list behind it (one function per item, named after it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse

from custody.frameworks.figures import WINDOW_DAYS, Figures
from custody.overview import humanise_ms
from reviews.models import ItemKind

# --- Evidence -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    label: str
    value: int | str
    url: str = ""
    note: str = ""


def _url(name: str, **query: str) -> str:
    base = reverse(f"console:{name}")
    return f"{base}?{urlencode(query)}" if query else base


def _audit(**query: str) -> str:
    return _url("audit", **query)


def _since(f: Figures) -> str:
    return (f.now - timedelta(days=WINDOW_DAYS)).date().isoformat()


def _days(value: timedelta | None) -> str:
    if value is None:
        return "—"
    if value < timedelta(days=1):
        return humanise_ms(round(value.total_seconds() * 1000))
    return f"{value.days} days"


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "—"


def nhi1(f: Figures) -> list[Evidence]:
    return [
        Evidence("agents offboarded", f.agents["offboarded"], _url("agents", status="offboarded")),
        Evidence(
            "median time to revoke",
            humanise_ms(f.revoke.median_ms),
            _audit(action="agent.offboard"),
            f"over the latest {f.revoke.measured} offboardings" if f.revoke.measured else "no offboarding yet",
        ),
        Evidence(
            "active agents whose sponsor is no longer active",
            f.agents["sponsor_gone"],
            _url("reviews", show="all", kind=ItemKind.SPONSOR_INACTIVE),
            "each gets a succession review",
        ),
        Evidence("delegation links ended by expiry", f.delegations["expired"], _audit(action="delegation.expire")),
    ]


def nhi2(f: Figures) -> list[Evidence]:
    return [
        Evidence("keys reported leaked", f.keys["leaked"], _audit(action="agentkey.")),
        Evidence(
            "tokens revoked with their leaked key",
            f.tokens["revoked_leaked"],
            _audit(action="token.revoke"),
        ),
        Evidence(
            "leaked-key reviews opened", f.reviews["leak_items"], _url("reviews", show="all", kind=ItemKind.KEY_LEAKED)
        ),
        Evidence("agent key secrets stored", 0, "", "only a prefix and a keyed hash are kept"),
    ]


def nhi3(f: Figures) -> list[Evidence]:
    return [
        Evidence("resources registered, each with an accountable owner", f.resources["total"], _url("resources")),
        Evidence("high or critical resources", f.resources["sensitive"], _url("resources", sensitivity="critical")),
        Evidence("token audiences in use", f.tokens["audiences"], "", "each token is bound to one audience"),
    ]


def nhi4(f: Figures) -> list[Evidence]:
    return [
        Evidence(f"delegation tokens issued · {WINDOW_DAYS} days", f.tokens["issued_window"], _audit(action="token.")),
        Evidence("longest token lifetime", _days(f.tokens["longest"]), "", "short-lived by design"),
        Evidence(
            f"checks refused for a bad credential · {WINDOW_DAYS} days",
            f.audit["credential_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
        Evidence("signing keys published (JWKS)", f.signing["published"], "/.well-known/jwks.json"),
    ]


def nhi5(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            "pending reviews advising revoke (unused access)",
            f.reviews["advise_revoke"],
            _url("reviews", show="all", recommendation="revoke"),
            f"unused {settings.CUSTOS_REVIEW_UNUSED_DAYS} days or never",
        ),
        Evidence(
            f"checks refused outside the delegated scopes · {WINDOW_DAYS} days",
            f.audit["scope_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
        Evidence(
            "just-in-time requests approved / denied",
            f"{f.requests['approved']} / {f.requests['denied']}",
            _url("access_requests", status="all"),
        ),
    ]


def nhi6(f: Figures) -> list[Evidence]:
    return [
        Evidence("tokens without an audience", f.tokens["without_audience"], "", "every token names its audience"),
        Evidence(
            "maximum delegation lifetime (configured)",
            _days(settings.CUSTOS_DELEGATION_MAX_LIFETIME),
            "",
            "CUSTOS_DELEGATION_MAX_LIFETIME",
        ),
    ]


def nhi7(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            "keys in force past the maximum age",
            f.keys["past_max_age"],
            _url("home") + "#keys",
            f"older than {settings.CUSTOS_KEY_MAX_AGE.days} days (CUSTOS_KEY_MAX_AGE)",
        ),
        Evidence(
            "keys without expiry",
            f.keys["without_expiry"],
            "",
            "none possible: expires_at is required and the agentkey_expires constraint keeps it after creation",
        ),
        Evidence(
            "longest lifetime of a key in force",
            _days(f.keys["longest"]),
            "",
            f"capped at {settings.CUSTOS_KEY_MAX_TTL.days} days (CUSTOS_KEY_MAX_TTL)",
        ),
        Evidence(
            "stale keys in force",
            f.keys["stale"],
            _url("home") + "#keys",
            f"unused {settings.CUSTOS_KEY_STALE_DAYS}+ days",
        ),
    ]


def nhi8(f: Figures) -> list[Evidence]:
    return [
        Evidence("token audiences in use", f.tokens["audiences"], "", "a token is refused by any other audience"),
        Evidence("delegation links in force", f.delegations["in_force"], _url("delegations")),
    ]


def nhi9(f: Figures) -> list[Evidence]:
    return [
        Evidence("agents registered", f.agents["total"], _url("agents")),
        Evidence("sub-agents with their own identity", f.agents["sub_agents"], _url("agents", level="sub")),
        Evidence("agents holding keys in force", f.keys["agents_with_keys"], _url("agents", status="active")),
        Evidence(
            f"checks attributed to one identified agent · {WINDOW_DAYS} days",
            _percent(f.audit["by_agent"], f.audit["decisions"]),
            _audit(action="check.", since=_since(f)),
        ),
    ]


def nhi10(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            "agents without an accountable sponsor", f.agents["without_sponsor"], _url("agents"), "sponsor is required"
        ),
        Evidence(
            f"checks naming the human they act for · {WINDOW_DAYS} days",
            _percent(f.audit["by_token"], f.audit["decisions"]),
            _audit(action="check.", since=_since(f)),
            "delegation tokens carry sub = the human, act = the agents",
        ),
    ]


def asi03(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            f"checks refused outside the delegated scopes · {WINDOW_DAYS} days",
            f.audit["scope_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
        Evidence("delegation links in force", f.delegations["in_force"], _url("delegations")),
        Evidence("just-in-time requests", f.requests["total"], _url("access_requests", status="all")),
    ]


def asi07(f: Figures) -> list[Evidence]:
    return [
        Evidence("sub-agent tokens derived from a parent token", f.tokens["derived"], _audit(action="token.")),
        Evidence("links below another link in force", f.delegations["chained"], _url("delegations")),
        Evidence("signing keys published (JWKS)", f.signing["published"], "/.well-known/jwks.json"),
    ]


def asi08(f: Figures) -> list[Evidence]:
    return [
        Evidence("cascade revocations recorded", f.audit["cascades"], _audit(action="delegation.revoke")),
        Evidence(
            "derived tokens revoked with their parent", f.tokens["derived_revoked"], _audit(action="token.revoke")
        ),
        Evidence("delegation links revoked", f.delegations["revoked"], _url("delegations", state="all")),
    ]


def asi10(f: Figures) -> list[Evidence]:
    return [
        Evidence("drift events raised", f.drift["total"], _url("drift", state="all"), f"on {f.drift['agents']} agents"),
        Evidence("drift events open", f.drift["open"], _url("drift")),
        Evidence("drift reviews opened", f.reviews["drift_items"], _url("reviews", show="all", kind=ItemKind.DRIFT)),
        Evidence("agents suspended", f.agents["suspended"], _url("agents", status="suspended")),
    ]


def pr_aa_01(f: Figures) -> list[Evidence]:
    return [
        Evidence("agents active", f.agents["active"], _url("agents", status="active")),
        Evidence("agent keys in force", f.keys["active"], _url("home") + "#keys"),
        Evidence("agents offboarded", f.agents["offboarded"], _url("agents", status="offboarded")),
    ]


def pr_aa_02(f: Figures) -> list[Evidence]:
    return [
        Evidence("delegation links in force", f.delegations["in_force"], _url("delegations")),
        Evidence(f"tokens issued · {WINDOW_DAYS} days", f.tokens["issued_window"], _audit(action="token.")),
    ]


def pr_aa_03(f: Figures) -> list[Evidence]:
    return [
        Evidence(
            f"checks authenticated · {WINDOW_DAYS} days", f.audit["decisions"], _audit(action="check.", since=_since(f))
        ),
        Evidence(
            f"refused for a bad credential · {WINDOW_DAYS} days",
            f.audit["credential_denials"],
            _audit(action="check.deny", since=_since(f)),
        ),
    ]


def pr_aa_04(f: Figures) -> list[Evidence]:
    return [
        Evidence("signing keys published (JWKS)", f.signing["published"], "/.well-known/jwks.json"),
        Evidence("tokens revoked", f.tokens["revoked"], _audit(action="token.revoke")),
        Evidence("longest token lifetime", _days(f.tokens["longest"])),
    ]


def pr_aa_05(f: Figures) -> list[Evidence]:
    return [
        Evidence("review items completed", f.reviews["decided"], _url("campaigns")),
        Evidence("review items overdue", f.reviews["overdue"], _url("reviews", show="all", overdue="on")),
        Evidence(
            "items routed to the fallback reviewer",
            f.reviews["rerouted"],
            _url("reviews", show="all"),
            "separation of duties, or the reviewer could not review",
        ),
        Evidence("campaigns active / closed", f"{f.campaigns['active']} / {f.campaigns['closed']}", _url("campaigns")),
    ]
