"""Query helpers that know no model."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce


def count_of(rows: QuerySet[Any], field: str) -> Coalesce:
    """A correlated COUNT of ``rows`` whose ``field`` points at the outer row: one query for a whole
    page whatever its length. Pass ``rows`` already scoped to the viewer, so the figure counts only
    what they could open."""
    counted = rows.filter(**{field: OuterRef("pk")}).order_by().values(field).annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)
