"""JSON request bodies that fail as a 4xx whatever they contain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class SafeJSONParser(JSONParser):
    """DRF's parser turns ``ValueError`` into a 400, but deeply nested input (``[[[[…]]]]``) raises
    ``RecursionError``, which would end as a 500. (The body's size is already capped by Django's
    ``DATA_UPLOAD_MAX_MEMORY_SIZE``, answered as a 413 by the exception handler.)"""

    def parse(
        self, stream: IO[Any], media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None
