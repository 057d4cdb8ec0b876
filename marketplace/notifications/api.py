"""Webhook endpoints over the API (owners only): list, create, disable."""

from __future__ import annotations

import uuid
from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.api.base import (
    ERROR_RESPONSES,
    IDEMPOTENCY_PARAMETER,
    ORGANIZATION_PARAMETER,
    READ_ERRORS,
    OrganizationScoped,
)
from marketplace.api.idempotency import idempotent
from marketplace.core.errors import NotFound
from marketplace.models import WebhookEndpoint
from marketplace.notifications import serializers as notifications_serializers
from marketplace.notifications import services


class WebhookList(OrganizationScoped):
    serializer_class = notifications_serializers.WebhookEndpointOut

    @extend_schema(
        operation_id="webhooks_list",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: notifications_serializers.WebhookEndpointOut(many=True), **READ_ERRORS},
        description="The organization's webhook endpoints (owners only).",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        endpoints = WebhookEndpoint.objects.filter(organization=acting.organization).order_by(
            "-created_at", "-pk"
        )
        page = self.paginate_queryset(endpoints)
        return self.get_paginated_response(
            notifications_serializers.WebhookEndpointOut(page, many=True).data
        )

    @extend_schema(
        operation_id="webhooks_create",
        request=notifications_serializers.WebhookEndpointIn,
        parameters=[IDEMPOTENCY_PARAMETER, ORGANIZATION_PARAMETER],
        responses={201: notifications_serializers.WebhookEndpointCreatedOut, **ERROR_RESPONSES},
        description="Subscribe an https URL to lease notifications (owners only). Deliveries "
        "carry X-Suanli-Event, X-Suanli-Delivery and X-Suanli-Signature (HMAC-SHA256 of the "
        "body under the secret, which this response shows once); failures are retried with "
        "backoff.",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_owner()
        data = notifications_serializers.WebhookEndpointIn(data=request.data)
        data.is_valid(raise_exception=True)
        endpoint = services.add_endpoint(principal=acting, **data.validated_data)
        out = notifications_serializers.WebhookEndpointCreatedOut(endpoint).data
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
        responses={200: notifications_serializers.WebhookEndpointOut, **ERROR_RESPONSES},
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
        endpoint = services.disable_endpoint(principal=acting, endpoint=endpoint)
        return Response(notifications_serializers.WebhookEndpointOut(endpoint).data)


def _uuid_or_none(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
