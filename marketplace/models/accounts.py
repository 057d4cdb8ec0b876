"""People, organizations and their access: users, memberships, invitations, API keys."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def normalize_email(email: str) -> str:
    """Emails are stored trimmed and lower-cased, so uniqueness ignores case."""
    return email.strip().lower()


class SiteRole(models.TextChoices):
    NONE = "", _("None")
    REGULATOR = "regulator", _("Regulator")
    OPERATOR = "operator", _("Operator")


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=normalize_email(email), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.setdefault("site_role", SiteRole.OPERATOR)
        return self.create_user(email, password, is_superuser=True, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person. Logs in with email; belongs to organizations through memberships."""

    email = models.EmailField(_("email"), unique=True)
    full_name = models.CharField(_("full name"), max_length=200, blank=True)
    site_role = models.CharField(
        _("site-wide role"), max_length=16, choices=SiteRole.choices, blank=True, default=""
    )
    is_active = models.BooleanField(_("active"), default=True)
    date_joined = models.DateTimeField(_("date joined"), default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(site_role__in=SiteRole.values), name="user_site_role_valid"
            ),
            models.CheckConstraint(condition=Q(email=Lower("email")), name="user_email_lower"),
        ]

    def __str__(self) -> str:
        return self.email

    def clean(self) -> None:
        super().clean()
        self.email = normalize_email(self.email)

    @property
    def is_staff(self) -> bool:
        """Operators run the exchange through the Django admin; nobody else gets in."""
        return self.is_active and (self.is_superuser or self.site_role == SiteRole.OPERATOR)

    @property
    def is_operator(self) -> bool:
        return self.is_staff

    @property
    def is_regulator(self) -> bool:
        return self.is_active and self.site_role == SiteRole.REGULATOR

    def has_perm(self, perm: str, obj: models.Model | None = None) -> bool:
        return self.is_operator or super().has_perm(perm, obj)

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_operator or super().has_module_perms(app_label)


class KybStatus(models.TextChoices):
    PENDING = "pending", _("Pending review")
    APPROVED = "approved", _("Approved")
    SUSPENDED = "suspended", _("Suspended")


class Organization(models.Model):
    """A legal entity that provides and/or buys compute. Only approved ones may trade."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    legal_name = models.CharField(_("legal name"), max_length=200)
    country = models.CharField(_("country"), max_length=2, help_text=_("ISO 3166-1 alpha-2"))
    registration_id = models.CharField(_("registration id"), max_length=64)
    is_provider = models.BooleanField(_("provides compute"), default=False)
    is_buyer = models.BooleanField(_("buys compute"), default=False)
    kyb_status = models.CharField(
        _("KYB status"), max_length=16, choices=KybStatus.choices, default=KybStatus.PENDING
    )
    kyb_decided_at = models.DateTimeField(null=True, blank=True, editable=False)
    kyb_decided_by = models.ForeignKey(
        "User", null=True, blank=True, on_delete=models.PROTECT, related_name="+", editable=False
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["country", "registration_id"], name="organization_registration_unique"
            ),
            models.CheckConstraint(
                condition=Q(is_provider=True) | Q(is_buyer=True),
                name="organization_provider_or_buyer",
            ),
            models.CheckConstraint(
                condition=Q(kyb_status__in=KybStatus.values), name="organization_kyb_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.legal_name

    @property
    def can_trade(self) -> bool:
        return self.kyb_status == KybStatus.APPROVED


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    TRADER = "trader", _("Trader")
    VIEWER = "viewer", _("Viewer")


class Scope(models.TextChoices):
    READ = "read", _("Read")
    TRADE = "trade", _("Trade")
    PROVIDER_AGENT = "provider-agent", _("Provider agent")


# What a member may do through the portal or a session-authenticated API call. Managing members
# and keys is the owner's alone; API keys carry scopes of their own.
ROLE_SCOPES: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset({Scope.READ, Scope.TRADE}),
    Role.TRADER: frozenset({Scope.READ, Scope.TRADE}),
    Role.VIEWER: frozenset({Scope.READ}),
}


class Membership(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"

    @property
    def scopes(self) -> frozenset[str]:
        return ROLE_SCOPES[self.role]


class Invitation(models.Model):
    """An owner's invitation for an email to join with a role; the token is stored hashed."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField(_("email"))
    role = models.CharField(_("role"), max_length=16, choices=Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "email"],
                condition=Q(accepted_at__isnull=True),
                name="invitation_one_open_per_email",
            ),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="invitation_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization}"


class ApiKey(models.Model):
    """A bearer key for one organization. Shown once; only a SHA-256 of the secret is kept.

    The full key reads ``sx_<prefix>_<secret>``; the prefix is public and finds the row.
    """

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    secret_hash = models.CharField(max_length=64, editable=False)
    scopes = ArrayField(models.CharField(max_length=32, choices=Scope.choices))
    created_by = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(scopes__contained_by=Scope.values) & ~Q(scopes=[]),
                name="api_key_scopes_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (sx_{self.prefix}_…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class IdempotencyRecord(models.Model):
    """The stored outcome of a POST made with an Idempotency-Key.

    ``scope`` is ``org:<id>`` (or ``user:<id>`` before the caller has an organization); the
    UNIQUE (scope, key) constraint is what makes a retried request impossible to apply twice.
    """

    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"
