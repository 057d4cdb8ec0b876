"""Bearer API keys, and how a request's acting organization is found."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from marketplace.accounts import queries, services
from marketplace.core.access import (
    Principal,
    membership_for,
    principal_for_key,
    principal_for_member,
)
from marketplace.core.errors import InvalidInput, NotAuthenticated, NotFound
from marketplace.models import ApiKey, User


class ApiKeyUser(AnonymousUser):
    """The ``request.user`` of a key-authenticated request: authenticated, but nobody's account."""

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]
        return True

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]
        return False


class ApiKeyAuthentication(BaseAuthentication):
    """``Authorization: Bearer sx_<prefix>_<secret>``. A bad key is a 401, never a fallback."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[ApiKeyUser, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        keyword, _sep, raw = header.partition(" ")
        if keyword != self.keyword or not raw.strip():
            raise NotAuthenticated(
                _("Send the API key as “Authorization: Bearer <key>”."), code="malformed_api_key"
            )
        api_key = queries.api_key_for(raw.strip())
        if api_key is None:
            raise NotAuthenticated(_("Unknown API key."), code="invalid_api_key")
        if not api_key.is_active:
            raise NotAuthenticated(_("This API key has been revoked."), code="revoked_api_key")
        services.touch_api_key(api_key=api_key, now=timezone.now())
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ApiKeyScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "marketplace.api.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "bearerFormat": "sx_<prefix>_<secret>"}


ORGANIZATION_HEADER = "X-Organization"


def principal(request: Request, organization_id: str | None = None) -> Principal:
    """The acting party: the API key's organization, or the signed-in user's membership in the
    organization named by the URL, the ``X-Organization`` header or the portal's current choice.
    """
    if isinstance(request.auth, ApiKey):
        acting = principal_for_key(request.auth)
        if organization_id is not None and str(acting.organization.public_id) != str(
            organization_id
        ):
            raise NotFound(_("No such organization."))
        return acting
    user = request.user
    if not isinstance(user, User):
        raise NotAuthenticated(_("Sign in or send an API key."))
    chosen = (
        organization_id
        or request.headers.get(ORGANIZATION_HEADER)
        or request.session.get("organization")
    )
    if not chosen:
        raise InvalidInput(
            _("Name the organization you act for in the X-Organization header."),
            code="organization_required",
            field=ORGANIZATION_HEADER,
        )
    return principal_for_member(membership_for(user, chosen))
