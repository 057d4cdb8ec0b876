"""Who may see and do what. Portal and API views fetch through these helpers and nothing else.

A ``Principal`` is the acting party of a request: a member of an organization (session login) or
an API key of one. A ``SiteReader`` is a person with a site-wide read-only role (a regulator): it
sees every organization's objects and can change none. ``<kind>_visible_to(reader)`` is the one
definition of which sites, pools, offers, orders and leases a reader sees; ``one_of`` fetches one
of them by public id. Another organization's objects are reported as not found, never as
forbidden, so that their existence does not leak.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TypeVar

from django.db.models import Model, Q, QuerySet
from django.utils.translation import gettext as _

from marketplace.core.errors import Forbidden, InvalidInput, NotFound
from marketplace.core.owners import ledger_owner
from marketplace.models import (
    ApiKey,
    Lease,
    Membership,
    Offer,
    Order,
    Organization,
    Pool,
    Role,
    Site,
    User,
)

M = TypeVar("M", bound=Model)


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
        return ledger_owner(self.organization)

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


# --------------------------------------------------------------------------- site-wide readers


@dataclass(frozen=True)
class SiteReader:
    """A person with a site-wide read-only role: every organization's objects, no writes (a
    write service asks for a ``Principal``, which this is not; ``require_scope`` refuses any scope
    but ``read``)."""

    user: User
    scopes: frozenset[str] = frozenset({"read"})

    @property
    def actor(self) -> str:
        return f"user:{self.user.pk}"

    def require_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(
                _("This action needs the “%(scope)s” scope.") % {"scope": scope},
                code="insufficient_scope",
            )


Reader = Principal | SiteReader


def site_reader_for(user: User) -> SiteReader:
    """The site-wide reader a regulator is; Forbidden for anyone else."""
    if not user.is_regulator:
        raise Forbidden(_("Only a regulator reads the whole market."), code="not_a_regulator")
    return SiteReader(user=user)


def _organization(reader: Reader) -> Organization | None:
    return reader.organization if isinstance(reader, Principal) else None


def sites_visible_to(reader: Reader) -> QuerySet[Site]:
    organization = _organization(reader)
    sites = Site.objects.all()
    return sites if organization is None else sites.filter(organization=organization)


def pools_visible_to(reader: Reader) -> QuerySet[Pool]:
    organization = _organization(reader)
    pools = Pool.objects.all()
    return pools if organization is None else pools.filter(site__organization=organization)


def offers_visible_to(reader: Reader) -> QuerySet[Offer]:
    organization = _organization(reader)
    offers = Offer.objects.all()
    return offers if organization is None else offers.filter(pool__site__organization=organization)


def orders_visible_to(reader: Reader) -> QuerySet[Order]:
    organization = _organization(reader)
    orders = Order.objects.all()
    return orders if organization is None else orders.filter(organization=organization)


def leases_visible_to(reader: Reader, *, side: str | None = None) -> QuerySet[Lease]:
    """The leases the reader's organization is party to (``side``: only as ``buyer`` or only as
    ``provider``); every lease for a site-wide reader."""
    organization = _organization(reader)
    leases = Lease.objects.all()
    if organization is None:
        return leases
    if side == "buyer":
        return leases.filter(buyer=organization)
    if side == "provider":
        return leases.filter(provider=organization)
    return leases.filter(Q(buyer=organization) | Q(provider=organization))


def one_of(
    queryset: QuerySet[M], public_id: uuid.UUID | str, *, missing: str, field: str | None = None
) -> M:
    """The object of ``queryset`` with that public id. Not there (or not a UUID): NotFound with
    ``missing`` as its message, or, for an id given in a request body's ``field``, InvalidInput
    naming the field."""
    try:
        found = queryset.filter(public_id=uuid.UUID(str(public_id))).first()
    except ValueError:
        found = None
    if found is None:
        if field is not None:
            raise InvalidInput(missing, code="not_found", field=field)
        raise NotFound(missing)
    return found
