"""Which supply an order may use: pure functions over plain values (no ORM), shared by the order
preview, the order book and the matcher's snapshot."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from marketplace.models.trading import LatencyTier


@dataclass(frozen=True)
class Location:
    country: str
    region: str = ""
    city: str = ""


def latency_tier(buyer: Location, site: Location) -> LatencyTier:
    """Same city → city; same region → regional; same country → national; else international."""
    if buyer.country != site.country:
        return LatencyTier.INTERNATIONAL
    if buyer.region and buyer.region == site.region:
        if buyer.city and buyer.city.casefold() == site.city.casefold():
            return LatencyTier.CITY
        return LatencyTier.REGIONAL
    return LatencyTier.NATIONAL


@dataclass(frozen=True)
class Supply:
    """An active offer of a pool, with what an order's constraints look at."""

    offer_id: int
    pool_id: int
    site_id: int
    device_slug: str
    memory_gb_per_unit: Decimal
    scu_per_unit: Decimal
    location: Location
    jurisdiction: str
    pue: Decimal
    renewable_share: Decimal
    verified: bool
    free_units: int
    min_price: Decimal
    available_from: dt.datetime
    available_until: dt.datetime
    min_lease_hours: int
    max_lease_hours: int


@dataclass(frozen=True)
class Demand:
    device_slugs: Sequence[str]
    min_memory_gb: Decimal | None
    min_scu_per_unit: Decimal | None
    duration_hours: int
    earliest_start: dt.datetime
    latest_start: dt.datetime
    allowed_regions: Sequence[str]
    allowed_jurisdictions: Sequence[str]
    location: Location | None
    max_latency_tier: int | None
    min_renewable_share: Decimal | None
    max_pue: Decimal | None
    verified_only: bool


# Reasons in the order they are checked; the first that fails is the one reported.
REASONS = (
    "hardware",
    "memory",
    "scu_per_unit",
    "region",
    "jurisdiction",
    "latency",
    "renewable_share",
    "pue",
    "verified",
    "lease_length",
    "availability_window",
    "no_free_units",
)


def exclusion(demand: Demand, supply: Supply) -> str | None:
    """Why ``supply`` cannot serve ``demand`` (the first failing reason), or None if it can."""
    if demand.device_slugs and supply.device_slug not in demand.device_slugs:
        return "hardware"
    if demand.min_memory_gb is not None and supply.memory_gb_per_unit < demand.min_memory_gb:
        return "memory"
    if demand.min_scu_per_unit is not None and supply.scu_per_unit < demand.min_scu_per_unit:
        return "scu_per_unit"
    if demand.allowed_regions and supply.location.region not in demand.allowed_regions:
        return "region"
    if demand.allowed_jurisdictions and supply.jurisdiction not in demand.allowed_jurisdictions:
        return "jurisdiction"
    if (
        demand.max_latency_tier is not None
        and demand.location is not None
        and latency_tier(demand.location, supply.location) > demand.max_latency_tier
    ):
        return "latency"
    if (
        demand.min_renewable_share is not None
        and supply.renewable_share < demand.min_renewable_share
    ):
        return "renewable_share"
    if demand.max_pue is not None and supply.pue > demand.max_pue:
        return "pue"
    if demand.verified_only and not supply.verified:
        return "verified"
    if not supply.min_lease_hours <= demand.duration_hours <= supply.max_lease_hours:
        return "lease_length"
    # Some start in the order's window must leave the whole lease inside the offer's window.
    duration = dt.timedelta(hours=demand.duration_hours)
    first_start = max(demand.earliest_start, supply.available_from)
    if first_start > demand.latest_start or first_start + duration > supply.available_until:
        return "availability_window"
    if supply.free_units <= 0:
        return "no_free_units"
    return None
