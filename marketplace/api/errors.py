"""One exception handler: every API error is ``{"error": {"code", "message", "field"}}``."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from marketplace.core.errors import DomainError


def error_body(code: str, message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field, **extra}}


def _first_validation_error(detail: Any, path: str = "") -> tuple[str | None, str, str]:
    """Walk DRF's nested ValidationError detail to its first (field path, code, message)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = str(key) if key != "non_field_errors" else ""  # list items: 0, 1, …
            return _first_validation_error(value, f"{path}.{field}".strip(".") if field else path)
    if isinstance(detail, list) and detail:
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                return _first_validation_error(value, f"{path}[{index}]")
            return _first_validation_error(value, path)
    code = getattr(detail, "code", "invalid") or "invalid"
    return (path or None), str(code), str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        response = Response(error_body(exc.code, exc.message, exc.field), status=exc.status)
        if exc.status == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = "Bearer"
        return response
    if isinstance(exc, exceptions.ValidationError):
        field, code, message = _first_validation_error(exc.detail)
        return Response(
            error_body(code, message, field, details=exc.detail), status=status.HTTP_400_BAD_REQUEST
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    handled = drf_exception_handler(exc, context)
    if handled is not None and isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        handled.data = error_body(codes if isinstance(codes, str) else "error", str(exc.detail))
    return handled
