"""Writes to market state. Every function is keyword-only, atomic, and says what it guarantees.

Uniqueness is left to the database (UNIQUE constraints), never to a check-then-act; an
IntegrityError from a constraint becomes the matching domain error.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable

import pycountry
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from marketplace.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from marketplace.models import (
    ApiKey,
    IdempotencyRecord,
    Invitation,
    KybStatus,
    Membership,
    Organization,
    Role,
    Scope,
    User,
    normalize_email,
)

API_KEY_PREFIX_BYTES = 6
API_KEY_SECRET_BYTES = 32


def hash_secret(secret: str) -> str:
    # Keys and tokens are 256-bit random strings: a fast hash is enough, nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


# --------------------------------------------------------------------------- people


def sign_up(*, email: str, password: str, full_name: str = "") -> User:
    """Create a user. Raises InvalidInput (field ``password``) or Conflict ``email_taken``."""
    email = normalize_email(email)
    candidate = User(email=email, full_name=full_name.strip())
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), code="weak_password", field="password") from None
    try:
        with transaction.atomic():
            return User.objects.create_user(email, password, full_name=full_name.strip())
    except IntegrityError:
        raise Conflict(
            _("An account with this email already exists."), code="email_taken", field="email"
        ) from None


# --------------------------------------------------------------------------- organizations


def create_organization(
    *,
    user: User,
    legal_name: str,
    country: str,
    registration_id: str,
    is_provider: bool,
    is_buyer: bool,
) -> Organization:
    """Create a pending organization with ``user`` as its owner, in one transaction."""
    country = country.strip().upper()
    if pycountry.countries.get(alpha_2=country) is None:
        raise InvalidInput(
            _("Unknown country code; use ISO 3166-1 alpha-2, e.g. CN."),
            code="unknown_country",
            field="country",
        )
    if not (is_provider or is_buyer):
        raise InvalidInput(
            _("An organization provides compute, buys it, or both."),
            code="no_market_side",
            field="is_buyer",
        )
    try:
        with transaction.atomic():
            organization = Organization.objects.create(
                legal_name=legal_name.strip(),
                country=country,
                registration_id=registration_id.strip(),
                is_provider=is_provider,
                is_buyer=is_buyer,
            )
            Membership.objects.create(user=user, organization=organization, role=Role.OWNER)
    except IntegrityError:
        raise Conflict(
            _("An organization with this registration id is already registered in %(country)s.")
            % {"country": country},
            code="organization_exists",
            field="registration_id",
        ) from None
    return organization


def decide_kyb(
    *, organization: Organization, operator: User, status: str, now: dt.datetime
) -> Organization:
    """Set an organization's KYB status (the operator's decision), recording who and when."""
    if not operator.is_operator:
        raise Forbidden(_("Only an operator decides KYB."), code="operator_required")
    if status not in KybStatus.values:
        raise InvalidInput(_("Unknown KYB status."), code="invalid_choice", field="kyb_status")
    Organization.objects.filter(pk=organization.pk).update(
        kyb_status=status, kyb_decided_at=now, kyb_decided_by=operator
    )
    organization.refresh_from_db()
    return organization


# --------------------------------------------------------------------------- invitations


def invite_member(
    *, organization: Organization, invited_by: User, email: str, role: str, now: dt.datetime
) -> tuple[Invitation, str]:
    """Invite an email address to join with ``role``; returns the invitation and its token.

    The token is emailed after commit and stored only as a hash. One open invitation per address
    and organization (a UNIQUE constraint); inviting an existing member is a Conflict.
    """
    email = normalize_email(email)
    if role not in Role.values:
        raise InvalidInput(_("Unknown role."), code="invalid_choice", field="role")
    if Membership.objects.filter(organization=organization, user__email=email).exists():
        raise Conflict(_("This person is already a member."), code="already_member", field="email")
    token = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                organization=organization,
                email=email,
                role=role,
                token_hash=hash_secret(token),
                invited_by=invited_by,
                created_at=now,
                expires_at=now + dt.timedelta(days=settings.INVITATION_TTL_DAYS),
            )
            transaction.on_commit(lambda: _send_invitation(invitation, token))
    except IntegrityError:
        raise Conflict(
            _("An invitation for this email is already open."),
            code="invitation_open",
            field="email",
        ) from None
    return invitation, token


def _send_invitation(invitation: Invitation, token: str) -> None:
    link = f"{settings.SITE_URL.rstrip('/')}/invitations/{token}/"
    send_mail(
        subject=_("You are invited to %(org)s on Suanli Exchange")
        % {"org": invitation.organization.legal_name},
        message=_("%(inviter)s invited you to join %(org)s as %(role)s.\n\nAccept: %(link)s\n")
        % {
            "inviter": invitation.invited_by.email,
            "org": invitation.organization.legal_name,
            "role": invitation.get_role_display(),
            "link": link,
        },
        from_email=None,
        recipient_list=[invitation.email],
    )


def accept_invitation(*, token: str, user: User, now: dt.datetime) -> Membership:
    """Turn an open invitation addressed to ``user``'s email into a membership, exactly once."""
    with transaction.atomic():
        invitation = (
            Invitation.objects.select_for_update()
            .select_related("organization")
            .filter(token_hash=hash_secret(token))
            .first()
        )
        if invitation is None or invitation.email != user.email:
            raise NotFound(_("This invitation does not exist or is not addressed to you."))
        if invitation.accepted_at is not None:
            raise Conflict(_("This invitation was already accepted."), code="invitation_used")
        if invitation.expires_at <= now:
            raise Conflict(_("This invitation has expired."), code="invitation_expired")
        membership, _created = Membership.objects.get_or_create(
            user=user, organization=invitation.organization, defaults={"role": invitation.role}
        )
        invitation.accepted_at = now
        invitation.accepted_by = user
        invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


# --------------------------------------------------------------------------- API keys


def create_api_key(
    *, organization: Organization, created_by: User, name: str, scopes: Iterable[str]
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the full secret, which is never stored or shown again."""
    chosen = sorted(set(scopes))
    if not chosen or not set(chosen) <= set(Scope.values):
        raise InvalidInput(
            _("Choose one or more of the scopes: %(scopes)s.")
            % {"scopes": ", ".join(Scope.values)},
            code="invalid_scopes",
            field="scopes",
        )
    if not name.strip():
        raise InvalidInput(_("Give the key a name."), code="required", field="name")
    prefix = secrets.token_hex(API_KEY_PREFIX_BYTES)
    secret = secrets.token_urlsafe(API_KEY_SECRET_BYTES)
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name.strip(),
        prefix=prefix,
        secret_hash=hash_secret(secret),
        scopes=chosen,
        created_by=created_by,
    )
    return api_key, f"sx_{prefix}_{secret}"


def revoke_api_key(*, api_key: ApiKey, now: dt.datetime) -> ApiKey:
    """Revoke a key; revoking a revoked key changes nothing (the first time is kept)."""
    ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    api_key.refresh_from_db()
    return api_key


def touch_api_key(*, api_key: ApiKey, now: dt.datetime) -> None:
    """Record use at most once per resolution window: a conditional UPDATE, not a write per call."""
    cutoff = now - dt.timedelta(seconds=settings.API_KEY_LAST_USED_RESOLUTION_SECONDS)
    if api_key.last_used_at is not None and api_key.last_used_at > cutoff:
        return  # recorded recently: no query at all on the hot path
    ApiKey.objects.filter(pk=api_key.pk).exclude(last_used_at__gt=cutoff).update(last_used_at=now)


# --------------------------------------------------------------------------- housekeeping


def purge_idempotency_records(*, now: dt.datetime) -> int:
    """Delete stored idempotent responses older than the TTL (at least 24 h by contract)."""
    ttl_hours = max(settings.IDEMPOTENCY_KEY_TTL_HOURS, 24)
    deleted, _by_model = IdempotencyRecord.objects.filter(
        created_at__lt=now - dt.timedelta(hours=ttl_hours)
    ).delete()
    return deleted
