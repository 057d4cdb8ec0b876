"""The REST API, one view per operation: authenticate, fetch through access, validate, call one
service or query, render."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace import queries, services
from marketplace.access import Principal
from marketplace.api import serializers as s
from marketplace.api.authentication import ORGANIZATION_HEADER, principal
from marketplace.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from marketplace.api.idempotency import idempotent
from marketplace.errors import Forbidden, NotFound
from marketplace.models import ApiKey, Organization, User, WebhookEndpoint
from marketplace.services import notifications

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
    code: OpenApiResponse(s.ErrorOut, description=text) for code, text in _ERRORS.items()
}
READ_ERRORS = {code: ERROR_RESPONSES[code] for code in (400, 401, 403, 404)}


def _session_user(request: Request) -> User:
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


class MeView(OrganizationScoped):
    @extend_schema(
        operation_id="me",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.MeOut, **READ_ERRORS},
        description="Who is acting: the organization, its scopes, and the key or person.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        body = {
            "organization": acting.organization,
            "scopes": sorted(acting.scopes),
            "email": acting.user.email if acting.user else None,
            "role": acting.role,
            "api_key": f"sx_{acting.api_key.prefix}_" if acting.api_key else None,
        }
        return Response(s.MeOut(body).data)


class OrganizationListCreate(GenericAPIView[Organization]):
    serializer_class = s.OrganizationOut

    def get_queryset(self) -> Any:
        if isinstance(self.request.auth, ApiKey):
            return Organization.objects.filter(pk=self.request.auth.organization_id)
        user = _session_user(self.request)
        return Organization.objects.filter(memberships__user=user)

    @extend_schema(
        operation_id="organizations_list",
        responses={200: s.OrganizationOut(many=True), **READ_ERRORS},
        description="The organizations you act for (an API key: its own).",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(s.OrganizationOut(page, many=True).data)

    def idempotency_scope(self, request: Request, **kwargs: Any) -> str:
        return f"user:{_session_user(request).pk}"

    @extend_schema(
        operation_id="organizations_create",
        request=s.OrganizationIn,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.OrganizationOut, **ERROR_RESPONSES},
        description="Register an organization (pending KYB) with yourself as owner. "
        "Needs a signed-in person.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        user = _session_user(request)
        data = s.OrganizationIn(data=request.data)
        data.is_valid(raise_exception=True)
        organization = services.create_organization(user=user, **data.validated_data)
        return Response(s.OrganizationOut(organization).data, status=status.HTTP_201_CREATED)


class OrganizationDetail(OrganizationScoped):
    @extend_schema(
        operation_id="organizations_retrieve",
        responses={200: s.OrganizationOut, **READ_ERRORS},
        description="One organization you act for, with its KYB status.",
    )
    def get(self, request: Request, organization_id: str) -> Response:
        acting = self.acting(request, organization_id=organization_id)
        acting.require_scope("read")
        return Response(s.OrganizationOut(acting.organization).data)


class MemberList(OrganizationScoped):
    serializer_class = s.MemberOut

    @extend_schema(
        operation_id="members_list",
        responses={200: s.MemberOut(many=True), **READ_ERRORS},
        description="Members of an organization you act for, with their roles.",
    )
    def get(self, request: Request, organization_id: str) -> Response:
        acting = self.acting(request, organization_id=organization_id)
        acting.require_scope("read")
        page = self.paginate_queryset(queries.members_of(acting.organization))
        return self.get_paginated_response(s.MemberOut(page, many=True).data)


class InvitationCreate(OrganizationScoped):
    @extend_schema(
        operation_id="invitations_create",
        request=s.InvitationIn,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: s.InvitationOut, **ERROR_RESPONSES},
        description="Invite a person by email (owners only); the invitation link is emailed.",
    )
    @idempotent
    def post(self, request: Request, organization_id: str) -> Response:
        acting = self.acting(request, organization_id=organization_id)
        owner = acting.require_owner()
        data = s.InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invite_member(
            organization=acting.organization,
            invited_by=owner,
            now=timezone.now(),
            **data.validated_data,
        )
        return Response(s.InvitationOut(invitation).data, status=status.HTTP_201_CREATED)


class ApiKeyListCreate(OrganizationScoped):
    serializer_class = s.ApiKeyOut

    @extend_schema(
        operation_id="api_keys_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.ApiKeyOut(many=True), **READ_ERRORS},
        description="The organization's API keys (owners only); secrets are never shown again.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        page = self.paginate_queryset(queries.api_keys_of(acting.organization))
        return self.get_paginated_response(s.ApiKeyOut(page, many=True).data)

    @extend_schema(
        operation_id="api_keys_create",
        request=s.ApiKeyIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: s.ApiKeyCreatedOut, **ERROR_RESPONSES},
        description="Create an API key (owners only, signed in). The full key is in this "
        "response only; a replay of the same Idempotency-Key does not show it again.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        owner = acting.require_owner()
        data = s.ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, secret = services.create_api_key(
            organization=acting.organization, created_by=owner, **data.validated_data
        )
        out = s.ApiKeyCreatedOut(api_key, context={"secret": secret}).data
        return _SecretResponse(out, status=status.HTTP_201_CREATED)


class _SecretResponse(Response):
    """A response whose secret is shown once: what the idempotency record keeps is redacted."""

    @property
    def stored_data(self) -> Any:
        return {**self.data, "key": None}


class ApiKeyRevoke(OrganizationScoped):
    @extend_schema(
        operation_id="api_keys_revoke",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.ApiKeyOut, **ERROR_RESPONSES},
        description="Revoke a key. Revoking it again changes nothing and returns it as it is.",
    )
    def post(self, request: Request, key_id: str) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        api_key = queries.api_keys_of(acting.organization).filter(public_id=_uuid(key_id)).first()
        if api_key is None:
            raise NotFound(_("No such API key."))
        api_key = services.revoke_api_key(api_key=api_key, now=timezone.now())
        return Response(s.ApiKeyOut(api_key).data)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(_("No such API key.")) from None


class WebhookList(OrganizationScoped):
    serializer_class = s.WebhookEndpointOut

    @extend_schema(
        operation_id="webhooks_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.WebhookEndpointOut(many=True), **READ_ERRORS},
        description="The organization's webhook endpoints (owners only).",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        endpoints = WebhookEndpoint.objects.filter(organization=acting.organization).order_by(
            "-created_at", "-pk"
        )
        page = self.paginate_queryset(endpoints)
        return self.get_paginated_response(s.WebhookEndpointOut(page, many=True).data)

    @extend_schema(
        operation_id="webhooks_create",
        request=s.WebhookEndpointIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: s.WebhookEndpointCreatedOut, **ERROR_RESPONSES},
        description="Subscribe an https URL to lease notifications (owners only). Deliveries "
        "carry X-Suanli-Event, X-Suanli-Delivery and X-Suanli-Signature (HMAC-SHA256 of the "
        "body under the secret, which this response shows once); failures are retried with "
        "backoff.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        data = s.WebhookEndpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = notifications.add_endpoint(principal=acting, **data.validated_data)
        out = s.WebhookEndpointCreatedOut(endpoint).data
        return _WebhookSecretResponse(out, status=status.HTTP_201_CREATED)


class _WebhookSecretResponse(Response):
    @property
    def stored_data(self) -> Any:
        return {**self.data, "secret": None}


class WebhookDisable(OrganizationScoped):
    @extend_schema(
        operation_id="webhooks_disable",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: s.WebhookEndpointOut, **ERROR_RESPONSES},
        description="Stop delivering to an endpoint (owners only); it stays on record.",
    )
    def post(self, request: Request, endpoint_id: str) -> Response:
        acting = self.acting(request)
        public_id = _uuid_or_none(endpoint_id)
        endpoint = (
            WebhookEndpoint.objects.filter(
                organization=acting.organization, public_id=public_id
            ).first()
            if public_id
            else None
        )
        if endpoint is None:
            raise NotFound(_("No such webhook endpoint."))
        endpoint = notifications.disable_endpoint(principal=acting, endpoint=endpoint)
        return Response(s.WebhookEndpointOut(endpoint).data)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
