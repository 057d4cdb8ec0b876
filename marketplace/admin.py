"""The operator's admin: approve organizations (KYB), manage people. Keys are read-only here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from marketplace.accounts import services
from marketplace.models import (
    ApiKey,
    DeviceModel,
    Invitation,
    KybStatus,
    Membership,
    Notification,
    Organization,
    User,
    WebhookAttempt,
    WebhookEndpoint,
)


class MembershipInline(admin.TabularInline[Membership, Any]):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin[Organization]):
    list_display = [
        "legal_name",
        "country",
        "registration_id",
        "is_provider",
        "is_buyer",
        "kyb_status",
        "created_at",
    ]
    list_filter = ["kyb_status", "is_provider", "is_buyer", "country"]
    search_fields = ["legal_name", "registration_id"]
    readonly_fields = ["public_id", "kyb_status", "kyb_decided_at", "kyb_decided_by", "created_at"]
    inlines = [MembershipInline]
    actions = ["approve", "suspend"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[Organization], status: str) -> None:
        operator = request.user
        if not isinstance(operator, User):
            raise PermissionDenied
        for organization in queryset:
            services.decide_kyb(
                organization=organization, operator=operator, status=status, now=timezone.now()
            )
        self.message_user(
            request,
            _("%(count)d organization(s) updated.") % {"count": queryset.count()},
            messages.SUCCESS,
        )

    @admin.action(description=_("Approve KYB (may trade)"))
    def approve(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        self._decide(request, queryset, KybStatus.APPROVED)

    @admin.action(description=_("Suspend (may not trade)"))
    def suspend(self, request: HttpRequest, queryset: QuerySet[Organization]) -> None:
        self._decide(request, queryset, KybStatus.SUSPENDED)


@admin.register(User)
class UserAdmin(admin.ModelAdmin[User]):
    list_display = ["email", "full_name", "site_role", "is_active", "date_joined"]
    list_filter = ["site_role", "is_active"]
    search_fields = ["email", "full_name"]
    fields = [
        "email",
        "full_name",
        "site_role",
        "is_active",
        "is_superuser",
        "last_login",
        "date_joined",
    ]
    readonly_fields = ["last_login", "date_joined"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = [
        "name",
        "organization",
        "prefix",
        "scopes",
        "created_at",
        "last_used_at",
        "revoked_at",
    ]
    readonly_fields = [f.name for f in ApiKey._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at"]
    readonly_fields = [f.name for f in Invitation._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(DeviceModel)
class DeviceModelAdmin(admin.ModelAdmin[DeviceModel]):
    """The operator curates the catalog; SCU is derived from the published peak figures."""

    list_display = [
        "name",
        "vendor",
        "kind",
        "memory_gb",
        "bf16_tflops",
        "scu_per_device",
        "tdp_watts",
        "active",
    ]
    list_filter = ["vendor", "kind", "active"]
    search_fields = ["name", "vendor", "slug"]
    prepopulated_fields = {"slug": ["vendor", "name"]}

    @admin.display(description=_("SCU per device"))
    def scu_per_device(self, device: DeviceModel) -> str:
        return f"{device.scu():.3f}"


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin[WebhookEndpoint]):
    list_display = ["url", "organization", "active", "created_at"]
    list_filter = ["active"]
    readonly_fields = ["secret", "created_at"]


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin[Notification]):
    """Read-only: notifications are written by the services that make the changes."""

    list_display = ["kind", "organization", "lease", "created_at", "emailed_at"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in Notification._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Notification | None = None) -> bool:
        return False


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin[WebhookAttempt]):
    list_display = ["notification", "endpoint", "number", "status_code", "delivered", "at"]
    list_filter = ["delivered"]
    readonly_fields = [f.name for f in WebhookAttempt._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: WebhookAttempt | None = None
    ) -> bool:
        return False

    def has_delete_permission(
        self, request: HttpRequest, obj: WebhookAttempt | None = None
    ) -> bool:
        return False
