"""SCIM filters (RFC 7644 §3.4.2.2) as Django ``Q`` objects.

Public API::

    users_q(filter: str) -> Q       # for Human.objects.filter(...)
    groups_q(filter: str) -> Q      # for ScimGroup.objects.filter(...)
    filter_q(filter: str, resource: ResourceFilter) -> Q
    ScimFilterError                 # .scim_type == "invalidFilter", .status == 400, .detail

    split_name(name) -> (given, family)   # how a one-field name reads as name.givenName/familyName

The text is tokenised and parsed by ``scim2-filter-parser`` (its lexer and grammar), with two fixes made
by subclassing rather than by hand-written parsing: its precedence table puts ``and`` and ``or`` on one
level, so ``a or b and c`` parsed as ``(a or b) and c`` where RFC 7644 binds ``and`` tighter; and its
lexer takes one-digit numbers only and cuts strings at an escaped quote. Comparison values keep their
JSON type (``true`` is a boolean, ``"true"`` a string).

Each resource type maps SCIM attribute paths to ORM fields or expressions (``USER_FILTER``,
``GROUP_FILTER``); the models are resolved when a filter is built, so importing this module touches no
model. Attribute names and schema URNs match case-insensitively; string values compare
case-insensitively unless the attribute is ``caseExact`` (RFC 7643: ``id``, ``externalId``), so
``userName``, ``emails`` and names ignore case. Everything is plain ORM (``StrIndex``, ``Substr``,
``Lower``, subqueries): no JSON lookups, the same SQL shape on PostgreSQL and SQLite. (SQLite's ``LIKE``
ignores ASCII case, so ``co``/``sw``/``ew`` on a ``caseExact`` attribute ignore case there.)

An unknown attribute, an operator the attribute does not support (``gt`` on a boolean, ``co`` on a
date), a value of the wrong type or bad syntax raises ``ScimFilterError``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, Literal

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When
from django.db.models.expressions import Combinable
from django.db.models.functions import Coalesce, Lower, StrIndex, Substr
from django.db.models.lookups import (
    Contains,
    EndsWith,
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    IEndsWith,
    IExact,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
    StartsWith,
)
from django.utils.dateparse import parse_datetime
from scim2_filter_parser import ast  # type: ignore[import-untyped]
from scim2_filter_parser.lexer import SCIMLexer  # type: ignore[import-untyped]
from scim2_filter_parser.parser import SCIMParser, SCIMParserError  # type: ignore[import-untyped]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


class ScimFilterError(Exception):
    """A filter the service cannot evaluate: RFC 7644 §3.4.2.2 answers 400 with scimType invalidFilter."""

    scim_type = "invalidFilter"
    status = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


# --- Parsing: scim2-filter-parser's grammar, with RFC 7644's precedence and JSON values ------------


class _Lexer(SCIMLexer):
    tokens = SCIMLexer.tokens
    # JSON numbers (the library's pattern is one digit) and JSON strings with their escapes.
    NUMBER = r"-?\d+(\.\d+)?([eE][+-]?\d+)?"

    @_(r'"(?:[^"\\]|\\.)*"')  # type: ignore[name-defined]  # noqa: F821
    def COMP_VALUE(self, t: Any) -> Any:
        try:
            t.value = json.loads(t.value)
        except ValueError:
            raise ScimFilterError(f"Bad string {t.value} in the filter.") from None
        return t


class _Parser(SCIMParser):
    # RFC 7644 §3.4.2.2: "not" binds tighter than "and", which binds tighter than "or".
    precedence = (
        ("left", OR),  # type: ignore[name-defined]  # noqa: F821
        ("left", AND),  # type: ignore[name-defined]  # noqa: F821
        ("right", NOT),  # type: ignore[name-defined]  # noqa: F821
    )
    # The library's rules, reused as they are (sly builds a grammar from a class's own namespace).
    filter = SCIMParser.filter
    value_path = SCIMParser.value_path
    attr_exp = SCIMParser.attr_exp
    log_exp = SCIMParser.log_exp
    attr_path = SCIMParser.attr_path
    sub_attr = SCIMParser.sub_attr

    # Values keep their JSON type, so `active eq true` and `title eq "true"` differ.
    @_("TRUE")  # type: ignore[name-defined]  # noqa: F821
    def comp_value(self, p: Any) -> Any:
        return ast.CompValue(True)

    @_("FALSE")  # type: ignore[name-defined,no-redef]  # noqa: F821
    def comp_value(self, p: Any) -> Any:  # noqa: F811
        return ast.CompValue(False)

    @_("NULL")  # type: ignore[name-defined,no-redef]  # noqa: F821
    def comp_value(self, p: Any) -> Any:  # noqa: F811
        return ast.CompValue(None)

    @_("NUMBER")  # type: ignore[name-defined,no-redef]  # noqa: F821
    def comp_value(self, p: Any) -> Any:  # noqa: F811
        return ast.CompValue(json.loads(p[0]))

    @_("COMP_VALUE")  # type: ignore[name-defined,no-redef]  # noqa: F821
    def comp_value(self, p: Any) -> Any:  # noqa: F811
        return ast.CompValue(p[0])


def parse(text: str) -> Any:
    """The filter's syntax tree (scim2-filter-parser's AST), or ScimFilterError."""
    if not isinstance(text, str) or not text.strip():
        raise ScimFilterError("The filter is empty.")
    try:
        tree = _Parser().parse(_Lexer().tokenize(text))
    except ScimFilterError:
        raise
    except (SCIMParserError, ValueError) as exc:
        raise ScimFilterError(f"The filter is not valid SCIM filter syntax: {exc}") from None
    if tree is None:
        raise ScimFilterError("The filter is not valid SCIM filter syntax.")
    return tree


# --- Attribute maps -------------------------------------------------------------------------------

Kind = Literal["text", "datetime", "reference", "active", "constant"]


@dataclass(frozen=True)
class Attribute:
    """How one SCIM attribute path reads from the database.

    ``text``: a string, from ``field`` (an ORM path) or ``expression``; ``case_exact`` as RFC 7643 says.
    ``datetime``: a date-time field, compared chronologically. ``reference``: an id (``pk``, a foreign
    key or a to-many relation named by ``field``), compared by the id's string. ``active``: the human's
    status read as a boolean. ``constant``: the same value for every row (``emails.type`` is "work").
    ``many``: the field crosses a to-many relation, so the condition runs in a subquery (no duplicates).
    """

    kind: Kind
    field: str = ""
    expression: Callable[[], Combinable] | None = None
    case_exact: bool = False
    constant: Any = None
    many: bool = False


@dataclass(frozen=True)
class ResourceFilter:
    """A resource type's filterable attributes, keyed by ``(schema URN or "", attribute, sub-attribute
    or None)``, lower-case; attributes of ``core_schema`` are keyed with "" and may be written with or
    without their URN, and an extension's attributes without their URN too when no core one has the name."""

    model: str
    core_schema: str
    attributes: Mapping[tuple[str, str, str | None], Attribute] = field(default_factory=dict)

    def resolve(self, uri: str | None, attr: str, sub: str | None) -> Attribute:
        uri_key = (uri or "").lower()
        if uri_key == self.core_schema.lower():
            uri_key = ""
        key = (uri_key, attr.lower(), sub.lower() if sub else None)
        found = self.attributes.get(key)
        if found is None and not uri_key:
            extension = [a for (u, n, s), a in self.attributes.items() if u and n == key[1] and s == key[2]]
            if len(extension) == 1:
                found = extension[0]
        if found is None:
            name = f"{uri}:{attr}" if uri else attr
            raise ScimFilterError(f"The attribute '{name}{'.' + sub if sub else ''}' cannot be filtered on.")
        return found

    def model_class(self) -> type[models.Model]:
        return apps.get_model(self.model)


def split_name(name: str) -> tuple[str, str]:
    """A one-field name as SCIM's given and family names: the first word, and the rest."""
    given, _, family = name.strip().partition(" ")
    return given, family.strip()


def _scim_user(column: str) -> Combinable:
    """A column of the human's ScimUser row (if any), as a subquery: a join would drop humans without one."""
    scim_user = apps.get_model("scim", "ScimUser")
    return Subquery(scim_user.objects.filter(human=OuterRef("pk")).values(column)[:1])


def _name_space() -> Combinable:
    return StrIndex(F("name"), Value(" "))


# The names read as the Users endpoint answers them (``scim.representation.user_resource``): what the
# IdP set when the human has a ScimUser row (blank: absent, so ``pr`` is false), otherwise Human.name
# (split at its first space for the parts, ``split_name``).


def _display_name() -> Combinable:
    return Coalesce(_scim_user("display_name"), F("name"), output_field=models.CharField())


def _formatted_name() -> Combinable:
    return Coalesce(_scim_user("formatted_name"), F("name"), output_field=models.CharField())


def _given_name() -> Combinable:
    first_word = Case(
        When(GreaterThan(_name_space(), 0), then=Substr(F("name"), 1, _name_space() - 1)),
        default=F("name"),
        output_field=models.CharField(),
    )
    return Coalesce(_scim_user("given_name"), first_word, output_field=models.CharField())


def _family_name() -> Combinable:
    rest = Case(
        When(GreaterThan(_name_space(), 0), then=Substr(F("name"), _name_space() + 1)),
        default=Value(""),
        output_field=models.CharField(),
    )
    return Coalesce(_scim_user("family_name"), rest, output_field=models.CharField())


def _user_name() -> Combinable:
    # The IdP's userName when it set one, else the email (what the Users endpoint answers as userName).
    return Coalesce(_scim_user("user_name"), F("email"), output_field=models.CharField())


USER_FILTER = ResourceFilter(
    model="governance.Human",
    core_schema=USER_SCHEMA,
    attributes={
        ("", "id", None): Attribute("reference", "pk", case_exact=True),
        ("", "externalid", None): Attribute("text", "external_id", case_exact=True),
        ("", "username", None): Attribute("text", expression=_user_name),
        ("", "active", None): Attribute("active", "status"),
        ("", "displayname", None): Attribute("text", expression=_display_name),
        ("", "name", "formatted"): Attribute("text", expression=_formatted_name),
        ("", "name", "givenname"): Attribute("text", expression=_given_name),
        ("", "name", "familyname"): Attribute("text", expression=_family_name),
        # One email per human (the work one); `emails co "x"` reads as emails.value (RFC 7644 §3.4.2.2).
        ("", "emails", None): Attribute("text", "email"),
        ("", "emails", "value"): Attribute("text", "email"),
        ("", "emails", "type"): Attribute("constant", constant="work"),
        ("", "emails", "primary"): Attribute("constant", constant=True),
        ("", "title", None): Attribute("text", "title"),
        ("", "meta", "resourcetype"): Attribute("constant", constant="User"),
        ("", "meta", "created"): Attribute("datetime", "created_at"),
        ("", "meta", "lastmodified"): Attribute("datetime", "updated_at"),
        (ENTERPRISE_USER.lower(), "department", None): Attribute("text", "department"),
        # Entra asks `manager eq "<id>"` (no sub-attribute) before it updates a manager.
        (ENTERPRISE_USER.lower(), "manager", None): Attribute("reference", "manager", case_exact=True),
        (ENTERPRISE_USER.lower(), "manager", "value"): Attribute("reference", "manager", case_exact=True),
        (ENTERPRISE_USER.lower(), "manager", "displayname"): Attribute("text", "manager__name"),
    },
)

GROUP_FILTER = ResourceFilter(
    model="scim.ScimGroup",
    core_schema=GROUP_SCHEMA,
    attributes={
        ("", "id", None): Attribute("reference", "pk", case_exact=True),
        ("", "externalid", None): Attribute("text", "external_id", case_exact=True),
        ("", "displayname", None): Attribute("text", "display_name"),
        # Entra asks `members eq "<id>"` to learn whether a user is in a group.
        ("", "members", None): Attribute("reference", "members", case_exact=True, many=True),
        ("", "members", "value"): Attribute("reference", "members", case_exact=True, many=True),
        ("", "members", "display"): Attribute("text", "members__name", many=True),
        ("", "meta", "resourcetype"): Attribute("constant", constant="Group"),
        ("", "meta", "created"): Attribute("datetime", "created_at"),
        ("", "meta", "lastmodified"): Attribute("datetime", "updated_at"),
    },
)


def users_q(filter: str) -> Q:
    """``Human.objects.filter(users_q('userName eq "ann@example.com"'))``."""
    return filter_q(filter, USER_FILTER)


def groups_q(filter: str) -> Q:
    """``ScimGroup.objects.filter(groups_q('displayName eq "Payments"'))``."""
    return filter_q(filter, GROUP_FILTER)


def filter_q(filter: str, resource: ResourceFilter) -> Q:
    return _Translator(resource).visit(parse(filter), None)


# --- Translation ----------------------------------------------------------------------------------

# Always true and always false, as conditions Django can negate (an empty Q() negates to "everything").
MATCH_ALL = Q(pk__isnull=False)
MATCH_NONE = Q(pk__in=[])

_STRING_OPS = {"eq": "exact", "co": "contains", "sw": "startswith", "ew": "endswith"}
_ORDER_OPS = {"gt": "gt", "ge": "gte", "lt": "lt", "le": "lte"}
_LOOKUPS: dict[str, type] = {
    "exact": Exact,
    "iexact": IExact,
    "contains": Contains,
    "icontains": IContains,
    "startswith": StartsWith,
    "istartswith": IStartsWith,
    "endswith": EndsWith,
    "iendswith": IEndsWith,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}


class _Translator:
    def __init__(self, resource: ResourceFilter) -> None:
        self.resource = resource

    def visit(self, node: Any, namespace: Any) -> Q:
        if isinstance(node, ast.Filter):
            # A value path used as a filter (`emails[type eq "work"]`): its sub-attributes are the
            # namespace's. Every multi-valued attribute here has one value per row, or is matched
            # per condition (members), so "the same value" needs no more than AND.
            q = self.visit(node.expr, node.namespace if node.namespace is not None else namespace)
            return ~q if node.negated else q
        if isinstance(node, ast.LogExpr):
            left, right = self.visit(node.expr1, namespace), self.visit(node.expr2, namespace)
            return left & right if node.op.lower() == "and" else left | right
        if isinstance(node, ast.AttrExpr):
            path = node.attr_path
            value = node.comp_value.value if node.comp_value is not None else None
            if isinstance(path.attr_name, ast.Filter):
                # emails[type eq "work"].value eq "x": the bracket selects, the sub-attribute compares.
                selector = path.attr_name
                target = selector.namespace
                if target.sub_attr is None:
                    raise ScimFilterError("A value filter compared as a whole needs a sub-attribute.")
                attribute = self.resource.resolve(target.uri, target.attr_name, target.sub_attr.value)
                chosen = self.visit(selector.expr, ast.AttrPath(target.attr_name, None, target.uri))
                return chosen & self.compare(attribute, node.value.lower(), value, _name(target))
            attribute = self.attribute(path, namespace)
            return self.compare(attribute, node.value.lower(), value, _name(path, namespace))
        raise ScimFilterError("The filter is not valid SCIM filter syntax.")  # pragma: no cover

    def attribute(self, path: Any, namespace: Any) -> Attribute:
        sub = path.sub_attr.value if path.sub_attr is not None else None
        if namespace is None:
            return self.resource.resolve(path.uri, path.attr_name, sub)
        if sub is not None or path.uri is not None:
            raise ScimFilterError(f"'{_name(path)}' is not a sub-attribute of '{namespace.attr_name}'.")
        return self.resource.resolve(namespace.uri, namespace.attr_name, path.attr_name)

    def compare(self, attribute: Attribute, op: str, value: Any, name: str) -> Q:
        if op == "pr":
            return self.present(attribute)
        if op == "ne":
            return ~self.compare(attribute, "eq", value, name)
        handler = {
            "text": self.text,
            "datetime": self.datetime,
            "reference": self.reference,
            "active": self.active,
            "constant": self.constant,
        }[attribute.kind]
        q = handler(attribute, op, value, name)
        return self.many(attribute, q)

    def many(self, attribute: Attribute, q: Q) -> Q:
        if not attribute.many:
            return q
        model = self.resource.model_class()
        return Q(pk__in=model._default_manager.filter(q).values("pk"))

    def present(self, attribute: Attribute) -> Q:
        if attribute.kind == "constant":
            return MATCH_ALL if attribute.constant is not None else MATCH_NONE
        if attribute.kind == "active" or attribute.field == "pk":
            return MATCH_ALL  # every human has a status, every row an id
        if attribute.kind == "text":
            if attribute.expression is not None:
                return ~Q(Exact(attribute.expression(), ""))
            return self.many(attribute, Q(**{f"{attribute.field}__isnull": False}) & ~Q(**{attribute.field: ""}))
        return self.many(attribute, Q(**{f"{attribute.field}__isnull": False}))

    def text(self, attribute: Attribute, op: str, value: Any, name: str) -> Q:
        if not isinstance(value, str):
            raise ScimFilterError(f"'{name}' is a string: compare it with a quoted value.")
        insensitive = not attribute.case_exact
        if op in _STRING_OPS:
            lookup = ("i" if insensitive else "") + _STRING_OPS[op]
            if attribute.expression is None:
                return Q(**{f"{attribute.field}__{lookup}": value})
            return Q(_LOOKUPS[lookup](attribute.expression(), value))
        if op in _ORDER_OPS:
            # Lexicographic, as RFC 7644 says, on the folded form when case does not matter.
            lhs: Any = attribute.expression() if attribute.expression is not None else F(attribute.field)
            if insensitive:
                lhs, value = Lower(lhs), value.lower()
            return Q(_LOOKUPS[_ORDER_OPS[op]](lhs, value))
        raise ScimFilterError(f"The operator '{op}' is not supported.")  # pragma: no cover

    def datetime(self, attribute: Attribute, op: str, value: Any, name: str) -> Q:
        if op not in _ORDER_OPS and op != "eq":
            raise ScimFilterError(f"'{name}' is a date-time: the operator '{op}' does not apply to it.")
        moment = parse_datetime(value) if isinstance(value, str) else None
        if moment is None:
            raise ScimFilterError(f"'{name}' is compared with an RFC 3339 date-time, not {json.dumps(value)}.")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        lookup = "exact" if op == "eq" else _ORDER_OPS[op]
        return Q(**{f"{attribute.field}__{lookup}": moment})

    def reference(self, attribute: Attribute, op: str, value: Any, name: str) -> Q:
        if op != "eq":
            raise ScimFilterError(f"'{name}' is an identifier: only eq, ne and pr apply to it.")
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ScimFilterError(f"'{name}' is compared with a quoted identifier.")
        model = self.resource.model_class()
        if attribute.field == "pk":
            target = model._meta.pk
        else:
            relation = model._meta.get_field(attribute.field)
            target = relation.related_model._meta.pk  # type: ignore[union-attr]
        try:
            key = target.to_python(str(value))
        except ValidationError:
            return MATCH_NONE  # no row has an id of another shape: a match for none, not an error
        lookup = "pk" if attribute.field == "pk" else f"{attribute.field}__pk"
        return Q(**{lookup: key})

    def active(self, attribute: Attribute, op: str, value: Any, name: str) -> Q:
        if op != "eq":
            raise ScimFilterError(f"'{name}' is a boolean: the operator '{op}' does not apply to it.")
        # Entra writes booleans as "True"/"False" in places; read those as the booleans they mean.
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ScimFilterError(f"'{name}' is compared with true or false.")
        is_active = Q(**{attribute.field: "active"})
        return is_active if value else ~is_active

    def constant(self, attribute: Attribute, op: str, value: Any, name: str) -> Q:
        held = attribute.constant
        if isinstance(held, bool) or held is None:
            if op != "eq":
                raise ScimFilterError(f"'{name}' is a boolean: the operator '{op}' does not apply to it.")
            return MATCH_ALL if value == held else MATCH_NONE
        if not isinstance(value, str):
            raise ScimFilterError(f"'{name}' is a string: compare it with a quoted value.")
        held, value = str(held).lower(), value.lower()
        matches = {
            "eq": held == value,
            "co": value in held,
            "sw": held.startswith(value),
            "ew": held.endswith(value),
            "gt": held > value,
            "ge": held >= value,
            "lt": held < value,
            "le": held <= value,
        }[op]
        return MATCH_ALL if matches else MATCH_NONE


def _name(path: Any, namespace: Any = None) -> str:
    sub = f".{path.sub_attr.value}" if path.sub_attr is not None else ""
    base = f"{path.uri}:{path.attr_name}" if path.uri else str(path.attr_name)
    return f"{namespace.attr_name}.{base}" if namespace is not None else base + sub
