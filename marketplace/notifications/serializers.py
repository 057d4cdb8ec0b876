"""Webhook endpoints over the API: how they are listed, created (the secret is shown once) and
disabled."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from marketplace.models import (
    NotificationKind,
    WebhookEndpoint,
)


class WebhookEndpointOut(serializers.ModelSerializer[WebhookEndpoint]):
    id = serializers.UUIDField(source="public_id", read_only=True)

    class Meta:
        model = WebhookEndpoint
        fields = ["id", "url", "kinds", "active", "created_at"]
        read_only_fields = fields


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret = serializers.CharField(
        read_only=True,
        help_text="Signs every delivery (X-Suanli-Signature: sha256=HMAC-SHA256(body)); shown "
        "in this response only.",
    )

    class Meta(WebhookEndpointOut.Meta):
        fields = [*WebhookEndpointOut.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookEndpointIn(serializers.Serializer[Any]):
    url = serializers.URLField(max_length=500)
    kinds = serializers.ListField(
        child=serializers.ChoiceField(choices=NotificationKind.choices),
        required=False,
        default=list,
        help_text="Empty: every kind.",
    )
