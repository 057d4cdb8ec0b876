"""Input and output serializers, one pair per operation."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from marketplace.models import (
    ApiKey,
    Membership,
    Organization,
    Role,
    Scope,
)


class OrganizationOut(serializers.ModelSerializer[Organization]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    can_trade = serializers.BooleanField(read_only=True)

    class Meta:
        model = Organization
        fields = [
            "id",
            "legal_name",
            "country",
            "registration_id",
            "is_provider",
            "is_buyer",
            "kyb_status",
            "can_trade",
            "created_at",
        ]
        read_only_fields = fields


class OrganizationIn(serializers.Serializer[Any]):
    legal_name = serializers.CharField(max_length=200)
    country = serializers.CharField(max_length=2, min_length=2)
    registration_id = serializers.CharField(max_length=64)
    is_provider = serializers.BooleanField(default=False)
    is_buyer = serializers.BooleanField(default=False)


class MemberOut(serializers.ModelSerializer[Membership]):
    email = serializers.EmailField(source="user.email", read_only=True)
    full_name = serializers.CharField(source="user.full_name", read_only=True)

    class Meta:
        model = Membership
        fields = ["email", "full_name", "role", "created_at"]
        read_only_fields = fields


class InvitationIn(serializers.Serializer[Any]):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationOut(serializers.Serializer[Any]):
    email = serializers.EmailField()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()


class ApiKeyOut(serializers.ModelSerializer[ApiKey]):
    id = serializers.UUIDField(source="public_id", read_only=True)
    prefix = serializers.SerializerMethodField()

    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "scopes", "created_at", "last_used_at", "revoked_at"]
        read_only_fields = fields

    def get_prefix(self, api_key: ApiKey) -> str:
        return f"sx_{api_key.prefix}_"


class ApiKeyCreatedOut(ApiKeyOut):
    key = serializers.SerializerMethodField(help_text="The full key. It is shown only this once.")

    class Meta(ApiKeyOut.Meta):
        fields = [*ApiKeyOut.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, api_key: ApiKey) -> str:
        secret: str = self.context["secret"]
        return secret


class ApiKeyIn(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices), allow_empty=False
    )


class MeOut(serializers.Serializer[Any]):
    organization = OrganizationOut()
    scopes = serializers.ListField(child=serializers.CharField())
    email = serializers.EmailField(allow_null=True)
    role = serializers.CharField(allow_null=True)
    api_key = serializers.CharField(allow_null=True, help_text="Prefix of the key in use, if any.")
