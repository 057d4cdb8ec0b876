"""What the exchange tells organizations about their leases: by email and by signed webhooks.

A ``Notification`` is written in the same transaction as the change it reports (an outbox row),
and delivered after commit by a Celery task; every webhook attempt is a ``WebhookAttempt`` row.
"""

from __future__ import annotations

import secrets
import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ledger.models import AppendOnly
from marketplace.models.accounts import Organization
from marketplace.models.leases import Lease


class NotificationKind(models.TextChoices):
    LEASE_SCHEDULED = "lease.scheduled", _("Lease scheduled")
    LEASE_READY = "lease.ready", _("Lease ready")
    LEASE_RECLAIM_NOTICE = "lease.reclaim_notice", _("Reclaim notice")
    LEASE_ENDED = "lease.ended", _("Lease ended")
    LEASE_SETTLED = "lease.settled", _("Lease settled")


def new_secret() -> str:
    return secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    """Where an organization wants its notifications POSTed, signed with ``secret``."""

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="webhook_endpoints"
    )
    url = models.URLField(_("URL"), max_length=500)
    secret = models.CharField(max_length=64, default=new_secret, editable=False)
    kinds = ArrayField(
        models.CharField(max_length=32, choices=NotificationKind.choices),
        default=list,
        blank=True,
        help_text=_("Empty: every kind."),
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    def __str__(self) -> str:
        return self.url

    def wants(self, kind: str) -> bool:
        return self.active and (not self.kinds or kind in self.kinds)


class Notification(models.Model):
    """One thing to tell one organization (the outbox row; delivered after commit)."""

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="notifications"
    )
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    lease = models.ForeignKey(
        Lease, null=True, blank=True, on_delete=models.PROTECT, related_name="notifications"
    )
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField()
    emailed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="notification_org_recent")
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.organization_id}"


class WebhookAttempt(AppendOnly):
    """One POST of a notification to an endpoint: its outcome, never edited."""

    notification = models.ForeignKey(
        Notification, on_delete=models.PROTECT, related_name="attempts"
    )
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="+")
    number = models.PositiveSmallIntegerField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    delivered = models.BooleanField(default=False)
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "endpoint", "number"], name="webhook_attempt_unique"
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.notification_id} → {self.endpoint_id}"
