"""What a viewer may see, held everywhere a name is printed.

Over a generated organisation (``visibility_org``: hidden parents, hidden delegates, cross-line
delegations, agent-made links and keys, cross-line access requests), for every role (admin, auditor, two
reviewers of different lines, a user with no role), this renders every console URL pattern and every
API v1 pattern, enumerated from ``config.urls`` and filled with the id of every object, visible or not
(one per model for the roles that see everything or nothing), and with one that does not exist: pages
and htmx partials, GETs and POSTs (each rolled back), then every link and GET form those answers offer
(filters, page markers, cursors), three links deep. It holds that:

1. no answer (nor a flash message, nor a decoded page marker) carries the name, purpose or any other
   text, or the id, of an object outside the viewer's ``visible_to``;
2. a filter, search or page marker naming something outside the view answers exactly as one naming
   nothing at all (no oracle);
3. for a reviewer, adding objects outside their view next to everything they see (hidden sub-agents,
   hidden links below their links, a whole other line with its traffic) changes no answer, byte for
   byte: counts and badges count only what they may see.

A URL pattern added later is covered without a new line here, unless its path parameter is one no rule
below knows how to fill: then the test fails and says so.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import html
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import pytest
import time_machine
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import Resolver404, URLPattern, URLResolver, resolve, reverse
from drf_spectacular.generators import SchemaGenerator

import config.urls
from audit.models import CHECK_ACTIONS, AuditEvent
from console import paging
from governance.models import AccessRequest, Agent, AgentKey, Delegation, DriftEvent, Grant, Human, Resource
from reviews.models import Campaign, ReviewItem
from scim.models import ScimClient
from tests.governance import visibility_org as vo

FROZEN = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
ROLES = ("admin", "auditor", "reviewer", "reviewer2", "outsider")
REVIEWERS = ("reviewer", "reviewer2")
HTMX = {"HX-Request": "true"}

# How to fill a path parameter: by the path segment before it and its name. A pattern whose parameter
# is not here fails the test (test_every_url_pattern_has_a_rule_for_its_path_parameters).
PATH_PARAMETERS: dict[tuple[str, str], type[Model]] = {
    ("humans", "pk"): Human,
    ("agents", "pk"): Agent,
    ("resources", "pk"): Resource,
    ("grants", "pk"): Grant,
    ("delegations", "pk"): Delegation,
    ("keys", "pk"): AgentKey,
    ("access-requests", "pk"): AccessRequest,
    ("drift", "pk"): DriftEvent,
    ("campaigns", "pk"): Campaign,
    ("items", "pk"): ReviewItem,
    ("review-items", "pk"): ReviewItem,
    ("scim-clients", "pk"): ScimClient,
}


def _decision_ids() -> list[str]:
    return list(AuditEvent.objects.filter(CHECK_ACTIONS).order_by("id").values_list("digest", flat=True)[:2])


def _session_ids() -> list[str]:
    seen = AuditEvent.objects.filter(CHECK_ACTIONS).order_by("id").values_list("context__session_id", flat=True)
    return list(dict.fromkeys(str(s) for s in seen[:50] if s))[:2]


# Path parameters that are not a model's id (the audit log's content-addressed ids, agent sessions), each
# with the values to try (pages that only admins and auditors read: the walk checks that everyone else is
# refused, and that they render) and one naming nothing.
PATH_VALUES: dict[tuple[str, str], tuple[Any, str]] = {
    ("custody", "digest"): (_decision_ids, "0" * 64),
    ("sessions", "session_id"): (_session_ids, "zz-absent-session"),
}
# Query parameters that continue a list rather than filter it.
MARKERS = ("after", "before", "cursor")
# A page of a console list, and of an API list asked with ?limit=: small, so every list has more pages.
PAGE_SIZE = 3
API_LIMIT = 2


# --- URL patterns ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pattern:
    namespace: str
    name: str
    route: str
    params: tuple[str, ...]

    @property
    def is_api(self) -> bool:
        return self.namespace == "api"


def _flatten(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _flatten(p.url_patterns, prefix + str(p.pattern))
        else:
            yield prefix + str(p.pattern), p


def url_patterns() -> list[Pattern]:
    found = []
    for namespace, patterns in (("console", config.urls.console_patterns), ("api", config.urls.api_v1_patterns)):
        for route, p in _flatten(patterns):
            assert p.name, f"{route} has no name: name it so it can be reversed"
            found.append(Pattern(namespace, p.name, route, tuple(p.pattern.converters)))
    return found


def model_of(route: str, param: str) -> type[Model]:
    segments = route.split("/")
    at = next(i for i, s in enumerate(segments) if re.fullmatch(rf"<(\w+:)?{param}>", s))
    rule = PATH_PARAMETERS.get((segments[at - 1] if at else "", param))
    if rule is None:
        pytest.fail(
            f"{route}: no rule says how to fill <{param}>. Add (segment, name) → model to PATH_PARAMETERS in "
            f"{__name__}, so the visibility invariant covers the new page."
        )
    return rule


def _values(pattern: Pattern, param: str, ids: dict[type[Model], list[int]]) -> list[Any]:
    segments = pattern.route.split("/")
    at = next(i for i, s in enumerate(segments) if re.fullmatch(rf"<(\w+:)?{param}>", s))
    if (segments[at - 1] if at else "", param) in PATH_VALUES:
        values, absent = PATH_VALUES[(segments[at - 1], param)]
        return [*values(), absent]
    return [*ids[model_of(pattern.route, param)], vo.NONEXISTENT_ID]


def filled(pattern: Pattern, ids: dict[type[Model], list[int]]) -> list[str]:
    choices = [[(param, value) for value in _values(pattern, param, ids)] for param in pattern.params]
    return [
        reverse(f"{pattern.namespace}:{pattern.name}", kwargs=dict(combination))
        for combination in itertools.product(*choices)
    ]


# --- Reading answers -------------------------------------------------------------------------------

_CSRF = re.compile(r'(name="csrfmiddlewaretoken" value=")[^"]*|("X-CSRFToken": ")[^"]*')
_URL_ATTR = re.compile(r'(?:href|hx-get|hx-post|action)="([^"]*)"')
_LONG_NUMBER = re.compile(r"(?<!\d)\d{7,8}(?!\d)")


def normalised(body: str) -> str:
    # A CSRF token is masked afresh on every answer.
    return _CSRF.sub(lambda m: (m.group(1) or m.group(2)) + "…", body)


def links_in(body: str, content_type: str) -> list[str]:
    if content_type.startswith("application/json"):
        found: list[str] = []
        try:
            data = json.loads(body)
        except ValueError:
            return found
        if isinstance(data, dict):
            found += [data[k] for k in ("next", "previous") if isinstance(data.get(k), str)]
        return found
    return [html.unescape(u) for u in _URL_ATTR.findall(body)]


def decoded_markers(urls: list[str]) -> str:
    """What the opaque values in links say (a page marker is base64 of the last row's name and id)."""
    out = []
    for url in urls:
        for _name, value in parse_qsl(urlsplit(url).query):
            if len(value) >= 8:
                try:
                    out.append(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode())
                except (ValueError, binascii.Error, UnicodeDecodeError):
                    continue
    return "\n".join(out)


class _Forms(HTMLParser):
    """The GET forms of a page: each field with the values it offers."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, tuple[str, list[str]]]]] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            if (a.get("method") or "get").lower() == "get" and a.get("action"):
                self.forms.append((html.unescape(a["action"] or ""), {}))
            else:
                self.forms.append(("", {}))  # a POST form: its fields are not filters
        elif not self.forms or not self.forms[-1][0] or not a.get("name"):
            return
        elif tag == "input":
            self.forms[-1][1][a["name"] or ""] = (a.get("type") or "text", [])
        elif tag == "select":
            self._select = a["name"]
            self.forms[-1][1][self._select or ""] = ("select", [])
        elif tag == "option" and self._select is not None:
            self.forms[-1][1][self._select][1].append(a.get("value") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def get_forms(body: str) -> list[tuple[str, dict[str, tuple[str, list[str]]]]]:
    parser = _Forms()
    parser.feed(body)
    return [f for f in parser.forms if f[0]]


def api_parameters() -> dict[str, dict[str, dict[str, Any]]]:
    """The query parameters of every API v1 GET, from its OpenAPI schema: path → name → JSON schema."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path, operations in schema["paths"].items():
        get = operations.get("get")
        if get:
            out[path] = {p["name"]: p.get("schema", {}) for p in get.get("parameters", []) if p["in"] == "query"}
    return out


# --- The walk ------------------------------------------------------------------------------------


@dataclass
class Walk:
    role: str
    client: Client
    hidden: vo.Hidden
    leaks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # GET answers, normalised, by URL and whether htmx asked: what must not change (the differential).
    answers: dict[tuple[str, bool], tuple[int, str]] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    def _inspect(self, method: str, url: str, response: HttpResponse, extra: str = "") -> str:
        if response.status_code >= 500:
            self.errors.append(f"{self.role} {method} {url}: {response.status_code}")
        body = normalised(response.content.decode(errors="replace")) if not response.streaming else ""
        ctype = response.get("Content-Type", "")
        # What the request itself carried is no leak when echoed (a search box shows what was typed).
        echo = body.replace(url, "").replace(html.escape(url), "")
        for _name, value in parse_qsl(urlsplit(url).query):
            if value:
                echo = echo.replace(value, "").replace(quote(value), "").replace(html.escape(value), "")
        path_ids = set(re.findall(r"\d+", urlsplit(url).path))
        text = "\n".join([echo, decoded_markers(links_in(body, ctype)), extra, response.get("HX-Redirect", "")])
        text += "\n" + response.get("Location", "")
        for token in set(vo.TOKEN.findall(text)) & self.hidden.tokens:
            self.leaks.append(f"{self.role} {method} {url}: shows {self.hidden.describe(token)}")
        for number in set(_LONG_NUMBER.findall(text)) - path_ids:
            if int(number) in self.hidden.ids:
                self.leaks.append(f"{self.role} {method} {url}: shows the id of {self.hidden.describe(int(number))}")
        return body

    def get(self, url: str, *, htmx: bool = False, record: bool = True) -> tuple[int, str, str]:
        response = self.client.get(url, headers=HTMX if htmx else {})
        self.counts["GET htmx" if htmx else "GET"] += 1
        body = self._inspect("GET" + (" (htmx)" if htmx else ""), url, response)
        if record:
            self.answers[(url, htmx)] = (response.status_code, body)
        return response.status_code, body, response.get("Content-Type", "")

    def post(self, url: str, *, api: bool, htmx: bool = False) -> int:
        """A POST with an empty body, rolled back: its answer, and any flash message it left."""
        with transaction.atomic():
            if api:
                response = self.client.post(url, data="{}", content_type="application/json")
            else:
                response = self.client.post(url, headers=HTMX if htmx else {})
            messages = str(self.client.session.get("_messages", ""))
            transaction.set_rollback(True)
        self.counts["POST htmx" if htmx else "POST"] += 1
        self._inspect("POST" + (" (htmx)" if htmx else ""), url, response, extra=messages)
        return response.status_code

    def same(self, label: str, first: tuple[int, str], second: tuple[int, str], echoes: tuple[str, str]) -> None:
        """Two answers that must not differ but for what their requests echo."""
        a, b = first[1].replace(echoes[0], "«»"), second[1].replace(echoes[1], "«»")
        self.counts["compared"] += 1
        if first[0] != second[0] or a != b:
            self.leaks.append(f"{self.role} {label}: answers differ ({first[0]} vs {second[0]})")


def _with(url: str, **params: Any) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in params.items()})
    return f"{parts.path}?{urlencode(query)}"


def _name_marker(name: str, pk: int) -> str:
    raw = json.dumps([name, pk], separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor(key: int, forward: bool = True) -> str:
    raw = json.dumps({"k": key, "d": "n" if forward else "p"}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _resolves(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return match.namespace if match.namespace in ("console", "api") else None


def walk(walker: Walk) -> None:
    """Every pattern, filled; every link and GET form offered; the oracles."""
    hidden = walker.hidden
    # A reviewer gets every object, for every method. A viewer who sees everything, or nothing, gets
    # one object of each model: their answers can hide nothing, or show nothing, so what is tried for
    # them is that every page renders and every action answers.
    every = {m: sorted(m._default_manager.values_list("pk", flat=True)) for m in vo.governed_models()}
    ids = every if hidden.ids and hidden.visible_ids else {m: pks[:1] for m, pks in every.items()}
    patterns = url_patterns()
    walker.counts["patterns"] = len(patterns)
    seeds: list[tuple[str, bool]] = []
    for pattern in patterns:
        for url in filled(pattern, ids):
            seeds.append((url, False))
            if not pattern.is_api:
                seeds.append((url, True))
        for url in filled(pattern, ids):
            # A method the view does not take is refused before anything is read, htmx or not.
            if walker.post(url, api=pattern.is_api) != 405 and not pattern.is_api:
                walker.post(url, api=False, htmx=True)
        if pattern.is_api and not pattern.params:
            seeds.append((_with(reverse(f"api:{pattern.name}"), limit=API_LIMIT), False))
    # Breadth first: the seeds, then what their answers link to with a query string (filters, page
    # markers), three links deep.
    queue = list(dict.fromkeys(seeds))
    seen = set(queue)
    lists: dict[str, str] = {}  # list pages (path → first answer) for the oracles below
    for depth in range(4):
        found: list[tuple[str, bool]] = []
        refused: set[str] = set()
        for url, htmx in queue:
            if htmx and url in refused:
                continue
            status, body, ctype = walker.get(url, htmx=htmx)
            if status == 405:
                refused.add(url)
            if status != 200:
                continue
            path = urlsplit(url).path
            if not htmx and "?" not in url and ctype.startswith("text/html") and get_forms(body):
                lists.setdefault(path, body)
            if ctype.startswith("application/json") and "?" in url:
                lists.setdefault(path, body)
            offered = [u for u in links_in(body, ctype) if "?" in u]
            for form_action, fields in get_forms(body) if ctype.startswith("text/html") else []:
                for name, (_kind, options) in fields.items():
                    offered += [_with(form_action, **{name: o}) for o in options if o]
            for link in offered:
                parts = urlsplit(link)
                if parts.netloc not in ("", "testserver") or _resolves(parts.path) is None:
                    continue
                target = f"{parts.path}?{parts.query}"
                for variant in (
                    ((target, False), (target, True)) if _resolves(parts.path) == "console" else ((target, False),)
                ):
                    if variant not in seen:
                        seen.add(variant)
                        found.append(variant)
        if depth == 3 or not found:
            break
        queue = found

    # The oracles: naming something hidden must answer as naming nothing. Probed with the hidden objects
    # next to the view (a parent, a delegate, a root human of something visible), and one more of each
    # model; searched for by their names.
    probes: dict[type[Model], list[Model]] = {m: list(objs) for m, objs in hidden.adjacent.items()}
    for model, pks in hidden.ids_by_model.items():
        if pks and not probes.get(model):
            probes[model] = [model._default_manager.get(pk=min(pks))]
    hidden_ids = sorted({obj.pk for objs in probes.values() for obj in objs})
    hidden_tokens = sorted(
        {t for objs in probes.values() for obj in objs for t in vo.TOKEN.findall(str(getattr(obj, "name", "")))}
        & hidden.tokens
    )
    absent = "zz-absent-00"
    schema = api_parameters()
    for path, body in sorted(lists.items()):
        base = path
        if _resolves(path) == "api":
            params = schema.get(path, {})
            ints = [n for n, s in params.items() if s.get("type") == "integer" and n != "limit"]
            texts = [
                n
                for n, s in params.items()
                if s.get("type") == "string" and "enum" not in s and "format" not in s and n not in MARKERS
            ]
        else:
            fields = {n: k for _a, f in get_forms(body) for n, (k, _o) in f.items()}
            ints = [n for n, k in fields.items() if k in ("hidden", "number")]
            texts = [n for n, k in fields.items() if k in ("search", "text")]
            # Integer parameters the page's own links carry (e.g. ?agent=<id>).
            for link in links_in(body, "text/html"):
                for name, value in parse_qsl(urlsplit(link).query):
                    if value.isdigit() and name not in MARKERS and urlsplit(link).path == path:
                        ints.append(name)
        for name in sorted(set(ints)):
            nothing = walker.get(_with(base, **{name: vo.NONEXISTENT_ID}), record=False)
            for pk in hidden_ids:
                probe = walker.get(_with(base, **{name: pk}), record=False)
                walker.same(
                    f"GET {base}?{name}=<hidden {pk}>", nothing[:2], probe[:2], (str(vo.NONEXISTENT_ID), str(pk))
                )
        for name in sorted(set(texts)):
            nothing = walker.get(_with(base, **{name: absent}), record=False)
            for token in hidden_tokens:
                probe = walker.get(_with(base, **{name: token}), record=False)
                walker.same(f"GET {base}?{name}=<hidden {token}>", nothing[:2], probe[:2], (absent, token))
        if _resolves(path) == "api" and "cursor" in schema.get(path, {}):
            for pk in hidden_ids:
                for forward in (True, False):
                    # Rows below (or above) a hidden row's key are those below (above) the next key:
                    # the two differ by that row alone, which the caller may not see.
                    a = walker.get(_with(base, limit=API_LIMIT, cursor=_cursor(pk, forward)), record=False)
                    b = walker.get(
                        _with(base, limit=API_LIMIT, cursor=_cursor(pk + (1 if forward else -1), forward)), record=False
                    )
                    walker.same(
                        f"GET {base}?cursor=<hidden {pk}>",
                        a[:2],
                        b[:2],
                        (_cursor(pk, forward), _cursor(pk + (1 if forward else -1), forward)),
                    )
        elif _resolves(path) == "console":
            # A marker is never an id to look up: one naming a hidden row answers as one naming none,
            # on every list (a list too short to page today still reads its marker).
            none = walker.get(_with(base, after=vo.NONEXISTENT_ID), record=False)
            for objs in probes.values():
                obj = objs[0]
                old = walker.get(_with(base, after=obj.pk), record=False)
                walker.same(
                    f"GET {base}?after={obj.pk} (an id)", none[:2], old[:2], (str(vo.NONEXISTENT_ID), str(obj.pk))
                )
                if "after=" in body:
                    # A hand-made (name, id) marker: the page after that name among the rows the viewer
                    # sees, the id looked up nowhere.
                    name = str(getattr(obj, "name", obj))
                    marker, unknown = _name_marker(name, obj.pk), _name_marker(name, vo.NONEXISTENT_ID)
                    a = walker.get(_with(base, after=marker), record=False)
                    b = walker.get(_with(base, after=unknown), record=False)
                    walker.same(f"GET {base}?after=<hidden {obj.pk}>", a[:2], b[:2], (marker, unknown))
            if "before=" in body:
                # Newest first: rows below a hidden row's key are the rows below the next key.
                for pk in hidden_ids:
                    a = walker.get(_with(base, before=pk), record=False)
                    b = walker.get(_with(base, before=pk + 1), record=False)
                    walker.same(f"GET {base}?before=<hidden {pk}>", a[:2], b[:2], (str(pk), str(pk + 1)))


# --- The tests -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def org(django_db_setup: None, django_db_blocker: Any) -> Iterator[vo.Org]:
    """Built once for the module, at a frozen moment (answers say "3 minutes ago": compared byte for
    byte, they must not drift), and rolled back after it."""
    with django_db_blocker.unblock(), time_machine.travel(FROZEN, tick=False):
        atomic = transaction.atomic()
        atomic.__enter__()
        previous = vo.spread_ids()
        try:
            with override_settings(CUSTOS_DRIFT_THRESHOLD=2):
                yield vo.build()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            vo.restore_ids(previous)


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    monkeypatch.setattr(paging, "PAGE_SIZE", PAGE_SIZE)
    # Messages in the session, so a POST's can be read (and rolled back) with it.
    settings.MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
    settings.CUSTOS_DRIFT_THRESHOLD = 2


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _first_change(before: str, after: str) -> str:
    lines = [
        line.strip()[:160]
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    return " | ".join(lines[:4])


def _report(walker: Walk) -> str:
    lines = sorted(set(walker.errors + walker.leaks), key=lambda line: (" (htmx)" in line, line))
    head = f"{len(lines)} problem(s) for {walker.role}:\n"
    return head + "\n".join(lines[:80]) + ("\n…" if len(lines) > 80 else "")


@pytest.mark.parametrize("role", ROLES)
def test_no_answer_shows_what_lies_outside_the_viewers_view(
    org: vo.Org, role: str, db: None, small_pages: None, settings: Any
) -> None:
    viewer = org.users[role]
    walker = Walk(role, _client(viewer), vo.hidden_from(viewer))
    walk(walker)
    if role in REVIEWERS:
        # Noninterference: objects outside the view, added next to everything in it, change nothing.
        before = dict(walker.answers)
        added = vo.perturb(viewer)
        assert added > 10
        walker.hidden = vo.hidden_from(viewer)
        for (url, htmx), was in before.items():
            if was[0] == 405:
                continue
            status, body, _ctype = walker.get(url, htmx=htmx)
            walker.counts["differential"] += 1
            if (status, body) != was:
                walker.leaks.append(
                    f"{role} GET {url}{' (htmx)' if htmx else ''}: changed when hidden objects were added: "
                    + _first_change(was[1], body)
                )
    print(f"\n{role}: {dict(walker.counts)}")
    assert not walker.errors and not walker.leaks, _report(walker)


def test_every_url_pattern_has_a_rule_for_its_path_parameters() -> None:
    for pattern in url_patterns():
        for param in pattern.params:
            segments = pattern.route.split("/")
            at = next(i for i, s in enumerate(segments) if re.fullmatch(rf"<(\w+:)?{param}>", s))
            if (segments[at - 1] if at else "", param) not in PATH_VALUES:
                model_of(pattern.route, param)
    with pytest.raises(pytest.fail.Exception, match="no rule says how to fill <pk>"):
        model_of("widgets/<int:pk>/", "pk")


def test_links_rooted_outside_the_view_name_no_human_and_count_no_human(
    org: vo.Org, db: None, small_pages: None
) -> None:
    # What adding hidden objects cannot show: links the reviewer sees through their delegates, rooted
    # at different humans outside their view, must name none of them, and the list counts links only.
    viewer = org.users["reviewer"]
    response = _client(viewer).get(reverse("console:delegations") + "?state=all")
    visible_humans = set(Human.objects.visible_to(viewer).values_list("pk", flat=True))
    hidden = [link for link, _status in response.context["rows"] if link.root_human_id not in visible_humans]
    assert len({link.root_human_id for link in hidden}) >= 2
    page = response.content.decode()
    assert "a human outside your view" in page
    for link in hidden:
        assert link.root_human.name not in page and reverse("console:human", args=[link.root_human_id]) not in page
    # The list counts links, never the humans behind them.
    assert "humans" not in response.context and f"{response.context['total']} link" in page
