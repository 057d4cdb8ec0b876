"""Reads of market state. Views and the API call these; nothing here writes."""

from __future__ import annotations

import hmac
import re

from django.db.models import QuerySet

from marketplace.models import ApiKey, Invitation, Membership, Organization, User
from marketplace.services import hash_secret

_API_KEY = re.compile(r"^sx_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")


def api_key_for(raw: str) -> ApiKey | None:
    """The active key this bearer string names, or None (malformed, unknown, wrong or revoked)."""
    match = _API_KEY.match(raw)
    if match is None:
        return None
    prefix, secret = match.groups()
    api_key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
    if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
        return None
    return api_key


def memberships_of(user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__legal_name", "pk")
    )


def members_of(organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user")


def open_invitations_of(organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=organization, accepted_at__isnull=True).order_by(
        "-created_at"
    )


def api_keys_of(organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at")
