"""The REST API, one view per operation: authenticate, fetch through access, validate, call one
service or query, render."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.accounts import queries, services
from marketplace.accounts import serializers as accounts_serializers
from marketplace.api.base import (
    ERROR_RESPONSES,
    IDEMPOTENCY_PARAMETER,
    ORGANIZATION_PARAMETER,
    READ_ERRORS,
    OrganizationScoped,
    session_user,
)
from marketplace.api.idempotency import idempotent
from marketplace.core.errors import NotFound
from marketplace.models import ApiKey, Organization


class MeView(OrganizationScoped):
    @extend_schema(
        operation_id="me",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: accounts_serializers.MeOut, **READ_ERRORS},
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
        return Response(accounts_serializers.MeOut(body).data)


class OrganizationListCreate(GenericAPIView[Organization]):
    serializer_class = accounts_serializers.OrganizationOut

    def get_queryset(self) -> Any:
        if isinstance(self.request.auth, ApiKey):
            return Organization.objects.filter(pk=self.request.auth.organization_id)
        user = session_user(self.request)
        return Organization.objects.filter(memberships__user=user)

    @extend_schema(
        operation_id="organizations_list",
        responses={200: accounts_serializers.OrganizationOut(many=True), **READ_ERRORS},
        description="The organizations you act for (an API key: its own).",
    )
    def get(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(
            accounts_serializers.OrganizationOut(page, many=True).data
        )

    def idempotency_scope(self, request: Request, **kwargs: Any) -> str:
        return f"user:{session_user(request).pk}"

    @extend_schema(
        operation_id="organizations_create",
        request=accounts_serializers.OrganizationIn,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: accounts_serializers.OrganizationOut, **ERROR_RESPONSES},
        description="Register an organization (pending KYB) with yourself as owner. "
        "Needs a signed-in person.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        user = session_user(request)
        data = accounts_serializers.OrganizationIn(data=request.data)
        data.is_valid(raise_exception=True)
        organization = services.create_organization(user=user, **data.validated_data)
        return Response(
            accounts_serializers.OrganizationOut(organization).data, status=status.HTTP_201_CREATED
        )


class OrganizationDetail(OrganizationScoped):
    @extend_schema(
        operation_id="organizations_retrieve",
        responses={200: accounts_serializers.OrganizationOut, **READ_ERRORS},
        description="One organization you act for, with its KYB status.",
    )
    def get(self, request: Request, organization_id: str) -> Response:
        acting = self.acting(request, organization_id=organization_id)
        acting.require_scope("read")
        return Response(accounts_serializers.OrganizationOut(acting.organization).data)


class MemberList(OrganizationScoped):
    serializer_class = accounts_serializers.MemberOut

    @extend_schema(
        operation_id="members_list",
        responses={200: accounts_serializers.MemberOut(many=True), **READ_ERRORS},
        description="Members of an organization you act for, with their roles.",
    )
    def get(self, request: Request, organization_id: str) -> Response:
        acting = self.acting(request, organization_id=organization_id)
        acting.require_scope("read")
        page = self.paginate_queryset(queries.members_of(acting.organization))
        return self.get_paginated_response(accounts_serializers.MemberOut(page, many=True).data)


class InvitationCreate(OrganizationScoped):
    @extend_schema(
        operation_id="invitations_create",
        request=accounts_serializers.InvitationIn,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: accounts_serializers.InvitationOut, **ERROR_RESPONSES},
        description="Invite a person by email (owners only); the invitation link is emailed.",
    )
    @idempotent
    def post(self, request: Request, organization_id: str) -> Response:
        acting = self.acting(request, organization_id=organization_id)
        owner = acting.require_owner()
        data = accounts_serializers.InvitationIn(data=request.data)
        data.is_valid(raise_exception=True)
        invitation, _token = services.invite_member(
            organization=acting.organization,
            invited_by=owner,
            now=timezone.now(),
            **data.validated_data,
        )
        return Response(
            accounts_serializers.InvitationOut(invitation).data, status=status.HTTP_201_CREATED
        )


class ApiKeyListCreate(OrganizationScoped):
    serializer_class = accounts_serializers.ApiKeyOut

    @extend_schema(
        operation_id="api_keys_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: accounts_serializers.ApiKeyOut(many=True), **READ_ERRORS},
        description="The organization's API keys (owners only); secrets are never shown again.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        page = self.paginate_queryset(queries.api_keys_of(acting.organization))
        return self.get_paginated_response(accounts_serializers.ApiKeyOut(page, many=True).data)

    @extend_schema(
        operation_id="api_keys_create",
        request=accounts_serializers.ApiKeyIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: accounts_serializers.ApiKeyCreatedOut, **ERROR_RESPONSES},
        description="Create an API key (owners only, signed in). The full key is in this "
        "response only; a replay of the same Idempotency-Key does not show it again.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        owner = acting.require_owner()
        data = accounts_serializers.ApiKeyIn(data=request.data)
        data.is_valid(raise_exception=True)
        api_key, secret = services.create_api_key(
            organization=acting.organization, created_by=owner, **data.validated_data
        )
        out = accounts_serializers.ApiKeyCreatedOut(api_key, context={"secret": secret}).data
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
        responses={200: accounts_serializers.ApiKeyOut, **ERROR_RESPONSES},
        description="Revoke a key. Revoking it again changes nothing and returns it as it is.",
    )
    def post(self, request: Request, key_id: str) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        api_key = queries.api_keys_of(acting.organization).filter(public_id=_uuid(key_id)).first()
        if api_key is None:
            raise NotFound(_("No such API key."))
        api_key = services.revoke_api_key(api_key=api_key, now=timezone.now())
        return Response(accounts_serializers.ApiKeyOut(api_key).data)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound(_("No such API key.")) from None
