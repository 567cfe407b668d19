"""References from one object to another, as every page, partial and list prints them.

``{% ref obj %}`` links to ``obj`` by its name when the viewer may see it (``console.visibility``), and
prints a neutral placeholder ("an agent outside your view") otherwise: never its name, id or a link.
``{% ref obj "label" %}`` reads ``label`` instead of the name; ``css="strong"`` classes the link and
``anchor="decisions"`` points it at a part of the page.
``{% refname obj %}`` is the same choice as plain text, for attributes and confirmation prompts.
``{% byline text obj %}`` prints an attribution label ("created by …") as plain text, unless it is the
name of ``obj`` and ``obj`` is outside the view: then ``obj``'s placeholder.

Templates use these for every object they did not fetch themselves; they never decide access.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.db.models import Model
from django.utils.html import format_html
from django.utils.safestring import SafeString

from console.visibility import label_of, placeholder, url_of, visibility_of

register = template.Library()


def _outside(model: type[Model]) -> SafeString:
    return format_html('<span class="outside-view">{}</span>', placeholder(model))


def _model(obj: Any) -> Model | None:
    # None, or "" for a path the template could not follow (an empty relation): nothing to print.
    if obj is None or obj == "":
        return None
    if not isinstance(obj, Model):
        raise TypeError(f"{{% ref %}} takes a model instance, not {type(obj).__name__}")
    return obj


@register.simple_tag(takes_context=True)
def ref(context: template.Context, obj: Any, label: Any = None, css: str = "", anchor: str = "") -> str:
    obj = _model(obj)
    if obj is None:
        return ""
    if not visibility_of(context.get("request")).sees(obj):
        return _outside(type(obj))
    text = label_of(obj) if label is None else str(label)
    url = url_of(obj)
    if url is None:
        return format_html("<span{}>{}</span>", format_html(' class="{}"', css) if css else "", text)
    href = f"{url}#{anchor}" if anchor else url
    return format_html('<a href="{}"{}>{}</a>', href, format_html(' class="{}"', css) if css else "", text)


@register.simple_tag(takes_context=True)
def refname(context: template.Context, obj: Any) -> str:
    # Returned as plain text: autoescaping applies, so it is safe inside an attribute.
    obj = _model(obj)
    return "" if obj is None else visibility_of(context.get("request")).name(obj)


@register.simple_tag(takes_context=True)
def byline(context: template.Context, text: str, obj: Any) -> str:
    # Plain text (autoescaped), as attributions are often printed inside an attribute.
    return visibility_of(context.get("request")).byline(text, _model(obj))
