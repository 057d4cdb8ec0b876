"""Reads about accounts: an API key by its secret (one statement), a user's memberships and the one
acting now, an organization's members, open invitations and API keys."""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence

from django.db import connection
from django.db.models import (
    QuerySet,
)

from marketplace.accounts.services import hash_secret
from marketplace.core import rows
from marketplace.models import (
    ApiKey,
    Invitation,
    Membership,
    Organization,
    User,
)

_API_KEY = re.compile(r"^sx_([0-9a-f]{12})_([A-Za-z0-9_-]{20,100})$")
# Every API request runs it: one constant statement, no ORM compilation (which cost five times
# the statement); the key and its organization are built as the ORM would load them.
_KEY_SQL = (
    f"SELECT {rows.columns(ApiKey, 'k')}, {rows.columns(Organization, 'o')} "  # noqa: S608 - constant SQL
    f"FROM {ApiKey._meta.db_table} k "
    f"JOIN {Organization._meta.db_table} o ON o.id = k.organization_id WHERE k.prefix = %s"
)


def api_key_for(raw: str) -> ApiKey | None:
    """The key this bearer string names, with its organization, or None (malformed, unknown or
    wrong secret). Whether it is revoked is the caller's check."""
    match = _API_KEY.match(raw)
    if match is None:
        return None
    prefix, secret = match.groups()
    with connection.cursor() as cursor:
        cursor.execute(_KEY_SQL, [prefix])
        row = cursor.fetchone()
    if row is None:
        return None
    split = len(ApiKey._meta.concrete_fields)
    api_key = rows.build(ApiKey, row[:split])
    if not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
        return None
    api_key.organization = rows.build(Organization, row[split:])
    return api_key


def memberships_of(user: User) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(user=user)
        .select_related("organization")
        .order_by("organization__legal_name", "pk")
    )


def acting_membership(memberships: Sequence[Membership], chosen: str | None) -> Membership | None:
    """The membership a signed-in person acts for: the organization chosen in the session, else
    their first one."""
    return next(
        (m for m in memberships if str(m.organization.public_id) == chosen),
        memberships[0] if memberships else None,
    )


def members_of(organization: Organization) -> QuerySet[Membership]:
    return Membership.objects.filter(organization=organization).select_related("user")


def open_invitations_of(organization: Organization) -> QuerySet[Invitation]:
    return Invitation.objects.filter(organization=organization, accepted_at__isnull=True).order_by(
        "-created_at"
    )


def api_keys_of(organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).order_by("-created_at")
