"""Domain errors: a stable machine code, a sentence for people, and the fields at fault.

Services raise these; the API's exception handler and the console's forms turn them into a 4xx or an
inline message. Nothing here knows about HTTP beyond the status each kind maps to.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    default_code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code or self.default_code
        self.fields: dict[str, list[str]] = {field: [detail]} if field else {}

    def restated(self, detail: str) -> DomainError:
        """The same refusal (kind, code, fields at fault) in other words: for someone whom the original
        sentence would tell a name they may not see."""
        again = type(self)(detail, code=self.code)
        again.fields = {field: [detail] for field in self.fields}
        return again


class ValidationFailed(DomainError):
    status = 400
    default_code = "invalid"


class Conflict(DomainError):
    status = 409
    default_code = "conflict"


class NotAllowed(DomainError):
    status = 403
    default_code = "forbidden"
