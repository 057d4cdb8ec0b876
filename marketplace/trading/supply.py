"""Writes to supply: a provider's sites, pools and offers (with their events), and offers that
expire. Each function is atomic and checks the principal's side and scope."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

import pycountry
from django.db import transaction
from django.db.models import Sum
from django.utils.translation import gettext as _

from marketplace.core.access import Principal
from marketplace.core.errors import Conflict, InvalidInput
from marketplace.models import (
    DeviceModel,
    Interconnect,
    Market,
    Offer,
    OfferEvent,
    OfferStatus,
    Pool,
    Site,
    event_data,
)
from marketplace.trading.rules import check_jurisdiction, check_region, check_tick, require_side

# --------------------------------------------------------------------------- supply


@dataclass(frozen=True)
class SiteRequest:
    name: str
    country: str
    region: str
    city: str
    jurisdiction: str
    pue: Decimal
    renewable_share: Decimal
    carbon_g_per_kwh: int
    certifications: Sequence[str] = ()


def create_site(*, principal: Principal, request: SiteRequest) -> Site:
    require_side(principal, provider=True)
    country = request.country.upper()
    if pycountry.countries.get(alpha_2=country) is None:
        raise InvalidInput(_("Unknown country code."), code="unknown_country", field="country")
    check_region(request.region.upper(), "region", country)
    check_jurisdiction(request.jurisdiction.upper(), "jurisdiction")
    if not Decimal(1) <= request.pue <= Decimal(5):
        raise InvalidInput(_("PUE is between 1.00 and 5.00."), code="pue_out_of_range", field="pue")
    if not Decimal(0) <= request.renewable_share <= Decimal(1):
        raise InvalidInput(
            _("A share is between 0 and 1."), code="share_out_of_range", field="renewable_share"
        )
    if Site.objects.filter(organization=principal.organization, name=request.name).exists():
        raise Conflict(
            _("You already have a site with this name."), code="site_exists", field="name"
        )
    return Site.objects.create(
        organization=principal.organization,
        name=request.name,
        country=country,
        region=request.region.upper(),
        city=request.city.strip(),
        jurisdiction=request.jurisdiction.upper(),
        pue=request.pue,
        renewable_share=request.renewable_share,
        carbon_g_per_kwh=request.carbon_g_per_kwh,
        certifications=sorted(set(request.certifications)),
    )


@dataclass(frozen=True)
class PoolRequest:
    site: Site
    name: str
    device_model: str
    units: int
    devices_per_unit: int = 1
    cpu_cores: int = 0
    ram_gb: int = 0
    disk_gb: int = 0
    interconnect: str = Interconnect.NONE


def create_pool(*, principal: Principal, request: PoolRequest) -> Pool:
    require_side(principal, provider=True)
    device = DeviceModel.objects.filter(slug=request.device_model, active=True).first()
    if device is None:
        raise InvalidInput(_("Unknown device model."), code="unknown_device", field="device_model")
    if request.units < 1 or request.devices_per_unit < 1:
        raise InvalidInput(
            _("A pool has at least one unit of at least one device."),
            code="quantity_too_small",
            field="units",
        )
    if Pool.objects.filter(site=request.site, name=request.name).exists():
        raise Conflict(
            _("This site already has a pool with this name."), code="pool_exists", field="name"
        )
    return Pool.objects.create(
        site=request.site,
        name=request.name,
        device_model=device,
        devices_per_unit=request.devices_per_unit,
        units=request.units,
        cpu_cores=request.cpu_cores,
        ram_gb=request.ram_gb,
        disk_gb=request.disk_gb,
        interconnect=request.interconnect,
    )


@dataclass(frozen=True)
class OfferRequest:
    market: Market
    pool: Pool
    units: int
    available_from: dt.datetime
    available_until: dt.datetime
    min_price: Decimal
    min_lease_hours: int = 1
    max_lease_hours: int = 720


def create_offer(*, principal: Principal, request: OfferRequest, now: dt.datetime) -> Offer:
    """Post an ask. The pool's active offers may not overlap in time beyond its units."""
    require_side(principal, provider=True)
    check_tick(request.min_price, request.market, "min_price")
    if request.units < 1:
        raise InvalidInput(_("Offer at least one unit."), code="quantity_too_small", field="units")
    if request.available_until <= request.available_from:
        raise InvalidInput(
            _("The window must end after it starts."),
            code="window_inverted",
            field="available_until",
        )
    if request.available_until <= now:
        raise InvalidInput(
            _("The window has already ended."), code="window_in_past", field="available_until"
        )
    window_hours = (request.available_until - request.available_from) / dt.timedelta(hours=1)
    if not 1 <= request.min_lease_hours <= request.max_lease_hours <= 720 or (
        request.min_lease_hours > window_hours
    ):
        raise InvalidInput(
            _("Lease hours must satisfy 1 ≤ minimum ≤ maximum ≤ 720 and fit the window."),
            code="duration_out_of_range",
            field="min_lease_hours",
        )
    with transaction.atomic():
        pool = Pool.objects.select_for_update().get(pk=request.pool.pk)  # one offer at a time
        overlapping = (
            Offer.objects.filter(
                pool=pool,
                status__in=[OfferStatus.ACTIVE, OfferStatus.PAUSED],
                available_from__lt=request.available_until,
                available_until__gt=request.available_from,
            ).aggregate(units=Sum("units"))["units"]
            or 0
        )
        if overlapping + request.units > pool.units:
            raise Conflict(
                _("The pool has %(units)d units; %(offered)d are already offered in this window.")
                % {"units": pool.units, "offered": overlapping},
                code="exceeds_pool_capacity",
                field="units",
            )
        offer = Offer.objects.create(
            market=request.market,
            pool=pool,
            units=request.units,
            available_from=request.available_from,
            available_until=request.available_until,
            min_price=request.min_price,
            min_lease_hours=request.min_lease_hours,
            max_lease_hours=request.max_lease_hours,
            created_at=now,
        )
        OfferEvent.objects.create(
            offer=offer,
            kind="posted",
            status=offer.status,
            actor=principal.actor,
            at=now,
            data=event_data(units=offer.units, min_price=offer.min_price),
        )
    return offer


OFFER_TRANSITIONS = {
    "pause": ({OfferStatus.ACTIVE}, OfferStatus.PAUSED),
    "resume": ({OfferStatus.PAUSED}, OfferStatus.ACTIVE),
    "withdraw": ({OfferStatus.ACTIVE, OfferStatus.PAUSED}, OfferStatus.WITHDRAWN),
}


def change_offer(*, principal: Principal, offer: Offer, action: str, now: dt.datetime) -> Offer:
    """Pause, resume or withdraw an offer (a conditional UPDATE: no lost race)."""
    principal.require_scope("trade")
    allowed, target = OFFER_TRANSITIONS[action]
    with transaction.atomic():
        changed = Offer.objects.filter(pk=offer.pk, status__in=allowed).update(status=target)
        if not changed:
            offer.refresh_from_db()
            raise Conflict(
                _("An offer that is %(status)s cannot be changed that way.")
                % {"status": offer.get_status_display()},
                code="offer_state",
                field="status",
            )
        OfferEvent.objects.create(
            offer=offer, kind=action, status=target, actor=principal.actor, at=now
        )
    offer.refresh_from_db()
    return offer


def expire_offers(*, now: dt.datetime) -> int:
    with transaction.atomic():
        ids = list(
            Offer.objects.select_for_update(skip_locked=True)
            .filter(status__in=[OfferStatus.ACTIVE, OfferStatus.PAUSED], available_until__lte=now)
            .values_list("pk", flat=True)
        )
        Offer.objects.filter(pk__in=ids).update(status=OfferStatus.EXPIRED)
        OfferEvent.objects.bulk_create(
            [
                OfferEvent(
                    offer_id=pk, kind="expired", status=OfferStatus.EXPIRED, actor="system", at=now
                )
                for pk in ids
            ]
        )
    return len(ids)
