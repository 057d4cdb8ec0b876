"""What every portal page shares: the request type, who acts (the signed-in member, its
organization's principal, a site-wide role's market-wide view), pagination, a form's status code
and price formatting. Views of every domain use these public names."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext as _
from django_htmx.middleware import HtmxDetails

from marketplace.accounts import queries
from marketplace.core.access import (
    Principal,
    Reader,
    principal_for_member,
    site_reader_for,
)
from marketplace.core.errors import NotFound
from marketplace.models import (
    Membership,
    User,
)

PAGE_SIZE = 50
SCU_PLACES = Decimal("0.0001")


def per_scu(price: Decimal, scu_per_unit: Decimal) -> Decimal | None:
    """A price per unit-hour as a price per SCU-hour, to 4 decimals (None for a 0-SCU unit)."""
    return (price / scu_per_unit).quantize(SCU_PLACES) if scu_per_unit else None


def plain(price: Decimal) -> Decimal:
    """A stored price without the storage's trailing zeros: 80.000000 → 80.00, 3.294702 stays."""
    cents = price.quantize(Decimal("0.01"))
    return cents if cents == price else price.normalize()


# --------------------------------------------------------------------------- who acts


def membership_or_none(request: HtmxHttpRequest) -> Membership | None:
    """The membership the user acts for: the organization chosen in the session, else the first
    one (the same rule as the navigation's "acting" marker)."""
    memberships = list(queries.memberships_of(request.user))
    return queries.acting_membership(memberships, request.session.get("organization"))


def acting_member(request: HtmxHttpRequest) -> Membership:
    membership = membership_or_none(request)
    if membership is None:
        raise NotFound(_("Create or join an organization first."))
    return membership


def principal_of(request: HtmxHttpRequest) -> Principal:
    return principal_for_member(acting_member(request))


def is_market_wide(request: HtmxHttpRequest) -> bool:
    """Regulators read every organization's orders and offers (and change none)."""
    return request.user.is_regulator


def reader_of(request: HtmxHttpRequest) -> Reader:
    """Who reads: a regulator, site-wide; anyone else as the organization they act for."""
    if is_market_wide(request):
        return site_reader_for(request.user)
    return principal_of(request)


def page_of(request: HtmxHttpRequest, queryset: QuerySet[Any]) -> Page[Any]:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails
    user: User


def form_status(form: object) -> int:
    """400 for a form that was posted and rejected, so clients and tests can tell."""
    errors = getattr(form, "errors", None)
    return 400 if getattr(form, "is_bound", False) and errors else 200
