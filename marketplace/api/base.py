"""The base every domain's API views share: the organization a request acts for, the
``Idempotency-Key`` and ``X-Organization`` parameters, and the error responses operations
declare."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request

from marketplace.api import serializers as api_serializers
from marketplace.api.authentication import ORGANIZATION_HEADER, principal
from marketplace.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from marketplace.core.access import Principal
from marketplace.core.errors import Forbidden
from marketplace.models import User

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    IDEMPOTENCY_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="Any unique string (a UUID is best). Retrying with the same key and body replays "
    "the first response; a different body gets 422; a retry while the first runs gets 409.",
)
ORGANIZATION_PARAMETER = OpenApiParameter(
    ORGANIZATION_HEADER,
    str,
    OpenApiParameter.HEADER,
    description="With a session login: the organization you act for. API keys ignore it.",
)
_ERRORS = {
    400: "Bad input: `error.field` names it.",
    401: "No API key, or a malformed, unknown or revoked one.",
    403: "Missing scope or role, or the organization may not do this.",
    404: "Not found (another organization's objects are never visible).",
    409: "Conflict with the current state, or the same Idempotency-Key still in flight.",
    422: "Idempotency-Key reused with a different request.",
}
ERROR_RESPONSES: dict[int, Any] = {
    code: OpenApiResponse(api_serializers.ErrorOut, description=text)
    for code, text in _ERRORS.items()
}
READ_ERRORS = {code: ERROR_RESPONSES[code] for code in (400, 401, 403, 404)}


def session_user(request: Request) -> User:
    if not isinstance(request.user, User):
        raise Forbidden(
            _("This action needs a signed-in person, not an API key."), code="session_required"
        )
    return request.user


class OrganizationScoped(GenericAPIView[Any]):
    # Base for views acting for one organization; idempotency keys are scoped to it. (A comment,
    # not a docstring: drf-spectacular would show a docstring as every operation's description.)

    def acting(self, request: Request, **kwargs: Any) -> Principal:
        return principal(request, kwargs.get("organization_id"))

    def idempotency_scope(self, request: Request, **kwargs: Any) -> str:
        return self.acting(request, **kwargs).idempotency_scope
