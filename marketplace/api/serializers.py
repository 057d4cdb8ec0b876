"""Input and output serializers, one pair per operation."""

from __future__ import annotations

import copy
from typing import Any, ClassVar

from rest_framework import relations, serializers
from rest_framework.fields import Field, SkipField
from rest_framework.relations import PKOnlyObject

from marketplace.models import (
    ApiKey,
    Membership,
    NotificationKind,
    Organization,
    Role,
    Scope,
    WebhookEndpoint,
)

Plan = tuple[tuple[str, Field[Any, Any, Any, Any] | None, str | None], ...]


class FlatOutput(serializers.BaseSerializer[Any]):
    """Mixin for a flat, read-only output serializer: its fields are built once per class.

    DRF builds every field of every serializer instance (a ModelSerializer introspects its model
    each time, and declared fields are deep-copied); for one object that costs more than the
    rendering. Here the first instance's bound fields become the class's plan and later
    instances render through it: ``field.get_attribute`` then ``field.to_representation``, as
    ``Serializer.to_representation`` does, and method fields call this instance's method (so
    they may use its context). A class with a nested serializer or a hyperlinked field (whose
    output depends on the instance's context) renders the DRF way.
    """

    _flat_plan: ClassVar[Plan | None]

    @classmethod
    def _plan(cls) -> Plan | None:
        if "_flat_plan" not in cls.__dict__:
            prototype: Any = cls()
            fields = list(prototype._readable_fields)
            contextual = (serializers.BaseSerializer, relations.HyperlinkedRelatedField)
            flat = not any(
                isinstance(f, contextual)
                or isinstance(getattr(f, "child_relation", None), contextual)
                for f in fields
            )
            cls._flat_plan = (
                tuple(
                    (str(f.field_name), None, str(f.method_name))
                    if isinstance(f, serializers.SerializerMethodField)
                    else (str(f.field_name), f, None)
                    for f in fields
                )
                if flat
                else None
            )
        return cls._flat_plan

    def to_representation(self, instance: Any) -> dict[str, Any]:
        plan = self._plan()
        if plan is None:
            return super().to_representation(instance)  # type: ignore[no-any-return]
        ret: dict[str, Any] = {}
        for name, field, method in plan:
            if field is None:
                ret[name] = getattr(self, method or "")(instance)
                continue
            try:
                attribute = field.get_attribute(instance)
            except SkipField:
                continue
            empty = (attribute.pk if isinstance(attribute, PKOnlyObject) else attribute) is None
            ret[name] = None if empty else field.to_representation(attribute)
        return ret


class ShallowFields(serializers.Serializer[Any]):
    """Mixin for an input serializer of plain declared fields, on a hot path: each instance
    binds shallow copies of the class's declared fields where DRF deep-copies them (which
    re-creates every field, its validators, and a nested serializer with its fields, per
    request). Sound because validating changes no field's state; DRF's plain fields, lists of
    them and nested plain serializers keep none."""

    def get_fields(self) -> dict[str, Field[Any, Any, Any, Any]]:
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}


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


class ErrorDetailOut(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="Stable, machine-readable reason.")
    message = serializers.CharField(help_text="Human-readable, in the request's language.")
    field = serializers.CharField(allow_null=True, help_text="The input at fault, if any.")


class ErrorOut(serializers.Serializer[Any]):
    error = ErrorDetailOut()


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
