"""``SqlCanonical`` (audit/hashing.py) without a database: the SQL text it builds for a document with
placeholders, piece by piece, and each misuse refused in the same words — a placeholder left out, used
twice, or written inside a string rather than as a value."""

from __future__ import annotations

import re

import pytest

from audit.hashing import SqlCanonical

MISUSE = "^each placeholder must appear once in the document, as a value$"


def test_the_expression_joins_literal_pieces_and_the_values_in_document_order() -> None:
    sql = SqlCanonical()
    first, second = sql.value("a.x"), sql.value("b.y")
    expression, params = sql.sql({"z": first, "a": [second, 1]})
    assert expression == "%s::text || (b.y) || %s::text || (a.x) || %s::text"
    assert params == ['{"a":[', ',1],"z":', "}"]


def test_a_placeholder_is_unguessable_and_outside_what_json_escapes() -> None:
    one, other = SqlCanonical(), SqlCanonical()
    mark = one.value("1")
    assert re.fullmatch("\ue000[0-9a-f]{16}:0\ue000", mark)
    assert other.value("1") != mark


def test_a_placeholder_left_out_is_refused() -> None:
    sql = SqlCanonical()
    sql.value("1")
    with pytest.raises(ValueError, match=MISUSE):
        sql.sql({"a": "no placeholder here"})


def test_a_placeholder_used_twice_is_refused() -> None:
    sql = SqlCanonical()
    mark = sql.value("1")
    with pytest.raises(ValueError, match=MISUSE):
        sql.sql({"a": mark, "b": mark})


def test_a_placeholder_inside_a_string_is_refused() -> None:
    sql = SqlCanonical()
    mark = sql.value("1")
    with pytest.raises(ValueError, match=MISUSE):
        sql.sql({"a": f"prefix {mark}", "b": mark})
