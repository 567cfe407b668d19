"""What a viewer may see of the objects a page or an answer refers to.

Which objects a console user may see is decided by each model's ``objects.visible_to(user)`` and by
nothing else. A page fetches its own rows through it; this module answers the other question every
page, partial, list and API answer asks: "this row names another object (a parent, a delegate, a
sponsor, an owner): may the viewer see *that* one?". The answer comes from the same ``visible_to``,
duck-typed (the toolkit imports no app), asked at most once per model per request, and not at all for
viewers whose ``visible_to`` is unrestricted (admins and auditors).

An object outside the view is presented by ``placeholder`` ("an agent outside your view"): never its
name, purpose, id or a link to it.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest

from console import roles

_ATTR = "_custos_visibility"


def scope_of(model: type[Model], user: Any) -> QuerySet[Any]:
    manager = model._default_manager
    visible_to = getattr(manager, "visible_to", None)
    if visible_to is None:
        # A reference to a model nobody scoped would otherwise be shown to everyone by default.
        raise TypeError(f"{model.__name__} has no visible_to(user): it cannot be shown as a reference")
    return visible_to(user)


def restriction(model: type[Model], user: Any) -> QuerySet[Any] | None:
    """``model``'s rows ``user`` may see, or None when that is all of them (so callers can skip a
    condition that would only cost a subquery)."""
    qs = scope_of(model, user)
    query = qs.query
    if not query.where and not query.is_sliced and query.combinator is None and not query.is_empty():
        return None
    return qs


def visible_q(field: str, model: type[Model], user: Any) -> Q:
    """A condition keeping rows whose ``field`` (a relation to ``model``) points at an object ``user``
    may see; an empty ``Q`` when they see every ``model``. For filters and searches that name another
    object: matching on something outside the view would reveal it by which rows come back."""
    qs = restriction(model, user)
    return Q() if qs is None else Q(**{f"{field}__in": qs.values("pk")})


def filter_by_reference[QS: QuerySet[Any]](qs: QS, field: str, pk: Any, user: Any) -> QS:
    """``qs`` rows whose ``field`` points at ``pk``, if ``user`` may see that object; none otherwise.
    A filter by the id of a hidden object then answers as one by an id that does not exist."""
    related = qs.model._meta.get_field(field).related_model
    return qs.filter(Q(**{f"{field}_id": pk}) & visible_q(field, related, user))


def _article(noun: str) -> str:
    return "an" if noun[:1].lower() in "aeiou" else "a"


def placeholder(model: type[Model]) -> str:
    """How an object outside the viewer's view is named: by its kind only."""
    noun = str(model._meta.verbose_name)
    return f"{_article(noun)} {noun} outside your view"


def label_of(obj: Model) -> str:
    """What a reference to a visible object reads: ``ref_label`` when the model gives one (a delegation
    whose ``str`` names the agent and human at its ends, which may themselves be hidden), else ``str``."""
    label = getattr(obj, "ref_label", None)
    return str(label) if label is not None else str(obj)


def url_of(obj: Model) -> str | None:
    get_url = getattr(obj, "get_absolute_url", None)
    return get_url() if get_url is not None else None


class Visibility:
    """One viewer's answers, kept for one request: per model, every id (None), or the set of ids
    ``visible_to`` lets them see (one query, the first time a model is asked about)."""

    def __init__(self, user: Any) -> None:
        self.user = user
        self._ids: dict[type[Model], frozenset[Any] | None] = {}

    def _visible_ids(self, model: type[Model]) -> frozenset[Any] | None:
        model = model._meta.concrete_model or model
        if model not in self._ids:
            if roles.is_agent(self.user):
                # An agent's own calls are confined by the API to its own sub-agents, keys and chain,
                # and every object those name is one it created or acts within.
                self._ids[model] = None
            else:
                qs = restriction(model, self.user)
                self._ids[model] = None if qs is None else frozenset(qs.values_list("pk", flat=True))
        return self._ids[model]

    def sees_id(self, model: type[Model], pk: Any) -> bool:
        ids = self._visible_ids(model)
        return ids is None or pk in ids

    def sees(self, obj: Model) -> bool:
        return self.sees_id(type(obj), obj.pk)

    def name(self, obj: Model) -> str:
        """The object's label, or its placeholder: for text that cannot carry markup (a message, a
        confirmation prompt)."""
        return label_of(obj) if self.sees(obj) else placeholder(type(obj))

    def hides_label(self, label: str, obj: Model | None) -> bool:
        """Whether an attribution kept as text ("created by …", the label of whoever made a link or
        issued a key) is exactly the name of ``obj`` (the agent that could have made it) while ``obj``
        is outside the view: printing the label would print the hidden name."""
        return isinstance(obj, Model) and label == str(obj) and not self.sees(obj)

    def byline(self, label: str, obj: Model | None) -> str:
        """The attribution, or ``obj``'s placeholder when it would name ``obj`` hidden."""
        return placeholder(type(obj)) if isinstance(obj, Model) and self.hides_label(label, obj) else label


def visibility_of(request: HttpRequest | Any | None) -> Visibility:
    """The viewer's ``Visibility`` for this request, made on first use and kept on the request (on the
    Django request a DRF request wraps)."""
    if request is None:
        # Rendered outside a request: nobody to ask for, so every reference is a placeholder.
        return Visibility(None)
    holder = getattr(request, "_request", request)
    found = getattr(holder, _ATTR, None)
    if found is None or found.user is not getattr(request, "user", None):
        found = Visibility(getattr(request, "user", None))
        setattr(holder, _ATTR, found)
    return found
