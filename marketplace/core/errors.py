"""The one family of domain errors. The API renders them as ``{"error": {code, message, field}}``;
the portal shows the message inline next to ``field``."""

from __future__ import annotations

from django.utils.functional import Promise


class DomainError(Exception):
    status = 400
    code = "invalid"

    def __init__(
        self, message: str | Promise, *, code: str | None = None, field: str | None = None
    ):
        super().__init__(str(message))
        self.message = str(message)
        self.code = code or type(self).code
        self.field = field


class InvalidInput(DomainError):
    status = 400
    code = "invalid"


class NotAuthenticated(DomainError):
    status = 401
    code = "not_authenticated"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class Unprocessable(DomainError):
    status = 422
    code = "unprocessable"
