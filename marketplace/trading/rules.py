"""Rules that supply and orders share: price ticks, regions and jurisdictions, which side of the
market an organization may act on, and the market's advisory lock (the matcher holds it while a
round clears)."""

from __future__ import annotations

import hashlib
from decimal import Decimal

import pycountry
from django.db import connection
from django.utils.translation import gettext as _

from marketplace.core.access import Principal
from marketplace.core.errors import Forbidden, InvalidInput
from marketplace.models import (
    Market,
)

BP = Decimal(10_000)
JURISDICTIONS_BEYOND_COUNTRIES = {"EU", "EEA"}


def market_lock_id(market: Market) -> int:
    """The advisory lock a clearing round of ``market`` holds while it runs."""
    digest = hashlib.sha256(f"clearing:{market.pk}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def try_lock(lock_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        row = cursor.fetchone()
    return bool(row and row[0])


def check_tick(price: Decimal, market: Market, field: str) -> None:
    if price <= 0:
        raise InvalidInput(
            _("The price must be above zero."), code="price_not_positive", field=field
        )
    if price % market.price_tick != 0:
        raise InvalidInput(
            _("The price must be a multiple of the tick %(tick)s %(currency)s.")
            % {"tick": market.price_tick.normalize(), "currency": market.currency},
            code="price_precision",
            field=field,
        )


def check_region(code: str, field: str, country: str | None = None) -> None:
    subdivision = pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]
    if subdivision is None or (country is not None and subdivision.country_code != country):
        raise InvalidInput(
            _("Unknown region “%(code)s”; use an ISO 3166-2 code such as CN-GS.") % {"code": code},
            code="unknown_region",
            field=field,
        )


def check_jurisdiction(code: str, field: str) -> None:
    if code not in JURISDICTIONS_BEYOND_COUNTRIES and pycountry.countries.get(alpha_2=code) is None:
        raise InvalidInput(
            _("Unknown jurisdiction “%(code)s”; use a country code or EU.") % {"code": code},
            code="unknown_jurisdiction",
            field=field,
        )


def require_side(principal: Principal, *, provider: bool) -> None:
    principal.require_can_trade()
    organization = principal.organization
    if provider and not organization.is_provider:
        raise Forbidden(_("Only providers list capacity."), code="not_a_provider")
    if not provider and not organization.is_buyer:
        raise Forbidden(_("Only buyers place orders."), code="not_a_buyer")
