"""Who may see and do what. Views fetch through these helpers and nothing else.

A ``Principal`` is the acting party of a request: a member of an organization (session login) or
an API key of one. Another organization's objects are reported as not found, never as forbidden,
so that their existence does not leak.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.utils.translation import gettext as _

from marketplace.errors import Forbidden, NotFound
from marketplace.models import ApiKey, Membership, Organization, Role, User


@dataclass(frozen=True)
class Principal:
    organization: Organization
    scopes: frozenset[str]
    user: User | None = None
    role: str | None = None
    api_key: ApiKey | None = None

    @property
    def actor(self) -> str:
        """Who did it, for event logs: a person or an API key (by its public prefix)."""
        if self.api_key is not None:
            return f"key:{self.api_key.prefix}"
        return f"user:{self.user.pk if self.user else '?'}"

    @property
    def idempotency_scope(self) -> str:
        return f"org:{self.organization.pk}"

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(
                _("This action needs the “%(scope)s” scope.") % {"scope": scope},
                code="insufficient_scope",
            )

    def require_owner(self) -> User:
        """The owner acting (a signed-in person: API keys never manage members or keys)."""
        if self.role != Role.OWNER or self.user is None:
            raise Forbidden(
                _("Only an owner of the organization may do this (signed in, not by API key)."),
                code="owner_required",
            )
        return self.user

    def require_can_trade(self) -> None:
        """Trading needs the scope and an organization the operator has approved."""
        self.require_scope("trade")
        if not self.organization.can_trade:
            raise Forbidden(
                _("Your organization is not approved to trade (KYB status: %(status)s).")
                % {"status": self.organization.get_kyb_status_display()},
                code="organization_not_approved",
            )


def parse_public_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(_("No such organization.")) from None


def membership_for(user: User, organization_id: uuid.UUID | str) -> Membership:
    """The user's membership in the organization, or NotFound if they have none."""
    public_id = parse_public_id(str(organization_id))
    membership = (
        Membership.objects.select_related("organization")
        .filter(user=user, organization__public_id=public_id, user__is_active=True)
        .first()
    )
    if membership is None:
        raise NotFound(_("No such organization."))
    return membership


def principal_for_member(membership: Membership) -> Principal:
    return Principal(
        organization=membership.organization,
        scopes=membership.scopes,
        user=membership.user,
        role=membership.role,
    )


def principal_for_key(api_key: ApiKey) -> Principal:
    return Principal(
        organization=api_key.organization, scopes=frozenset(api_key.scopes), api_key=api_key
    )


def organization_for(principal: Principal, organization_id: uuid.UUID | str) -> Organization:
    """The organization if the principal acts for it; NotFound otherwise."""
    if parse_public_id(str(organization_id)) != principal.organization.public_id:
        raise NotFound(_("No such organization."))
    return principal.organization
