"""Reads of market state. Views and the API call these; nothing here writes."""

from __future__ import annotations

import csv
import datetime as dt
import hmac
import io
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import connection
from django.db.models import (
    CharField,
    Count,
    F,
    Max,
    Min,
    Prefetch,
    Q,
    QuerySet,
    Sum,
    TextChoices,
    Value,
    Window,
)
from django.db.models.functions import Cast, Concat, Lag
from django.utils.translation import gettext_lazy as _

from ledger import metering
from ledger.money import cost
from marketplace import rows
from marketplace.compat import REASONS, Demand, Location, Supply, exclusion
from marketplace.models import (
    LIVE_LEASE_STATUSES,
    OPEN_ORDER_STATUSES,
    ApiKey,
    ClearingRound,
    Invitation,
    Lease,
    LeaseEvent,
    Market,
    Membership,
    Offer,
    OfferStatus,
    Order,
    Organization,
    RoundClass,
    Settlement,
    Site,
    User,
)
from marketplace.services import hash_secret
from marketplace.services.leases import window as lease_window
from marketplace.services.market import OrderRequest

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


# --------------------------------------------------------------------------- market


def supply_of(market: Market, *, now: dt.datetime) -> list[Supply]:
    """Active offers of a market still open at ``now``, with their free units then (the offer's
    units minus those its live leases hold at ``now``)."""
    offers = (
        Offer.objects.filter(market=market, status=OfferStatus.ACTIVE, available_until__gt=now)
        .select_related("pool__site", "pool__device_model")
        .order_by("min_price", "pk")
    )
    leased = leased_units(market, at=now)
    return [
        Supply(
            offer_id=offer.pk,
            pool_id=offer.pool_id,
            site_id=offer.pool.site_id,
            device_slug=offer.pool.device_model.slug,
            memory_gb_per_unit=offer.pool.memory_gb_per_unit,
            scu_per_unit=offer.pool.scu_per_unit,
            location=Location(
                offer.pool.site.country, offer.pool.site.region, offer.pool.site.city
            ),
            jurisdiction=offer.pool.site.jurisdiction,
            pue=offer.pool.site.pue,
            renewable_share=offer.pool.site.renewable_share,
            verified=offer.pool.verified,
            free_units=offer.units - leased.get(offer.pk, 0),
            min_price=offer.min_price,
            available_from=offer.available_from,
            available_until=offer.available_until,
            min_lease_hours=offer.min_lease_hours,
            max_lease_hours=offer.max_lease_hours,
        )
        for offer in offers
    ]


def leased_units(market: Market, *, at: dt.datetime) -> dict[int, int]:
    """Offer id → units its live leases hold at ``at``."""
    rows = (
        Lease.objects.filter(
            market=market,
            status__in=LIVE_LEASE_STATUSES,
            starts_at__lte=at,
            ends_at__gt=at,
        )
        .values("offer_id")
        .annotate(units=Sum("units"))
        .values_list("offer_id", "units")
    )
    return dict(rows)


_DEMAND_FIELDS = (
    "min_memory_gb",
    "min_scu_per_unit",
    "duration_hours",
    "earliest_start",
    "latest_start",
    "allowed_regions",
    "allowed_jurisdictions",
    "max_latency_tier",
    "min_renewable_share",
    "max_pue",
    "verified_only",
)


def _demand(
    source: Order | OrderRequest, location: Location | None, device_slugs: Sequence[str]
) -> Demand:
    fields = {name: getattr(source, name) for name in _DEMAND_FIELDS}
    return Demand(device_slugs=device_slugs, location=location, **fields)


def demand_of(order: Order, device_slugs: Sequence[str]) -> Demand:
    """The constraints of a placed order."""
    location = Location(order.buyer_country, order.buyer_region, order.buyer_city)
    return _demand(order, location if order.buyer_country else None, device_slugs)


@dataclass(frozen=True)
class ClassKey:
    site_id: int
    device_slug: str


@dataclass
class PreviewClass:
    site: str
    region: str
    device: str
    scu_per_unit: Decimal
    free_units: int
    min_price: Decimal
    max_price: Decimal


@dataclass
class Preview:
    classes: list[PreviewClass]
    excluded: dict[str, int]  # reason → number of offers it excluded
    compatible_units: int
    affordable_units: int  # free units at or below the order's limit price


def preview(
    demand: Demand,
    *,
    market: Market,
    limit_price: Decimal | None,
    price_per_scu: bool,
    now: dt.datetime,
) -> Preview:
    """What supply an order draft could use now, and why the rest is excluded."""
    excluded = dict.fromkeys(REASONS, 0)
    classes: dict[ClassKey, PreviewClass] = {}
    affordable = 0
    sites = {s.pk: s for s in Site.objects.filter(pools__offers__market=market).distinct()}
    for supply in supply_of(market, now=now):
        reason = exclusion(demand, supply)
        if reason is not None:
            excluded[reason] += 1
            continue
        unit_limit = (
            (limit_price * supply.scu_per_unit if price_per_scu else limit_price)
            if (limit_price is not None)
            else None
        )
        if unit_limit is None or supply.min_price <= unit_limit:
            affordable += supply.free_units
        key = ClassKey(supply.site_id, supply.device_slug)
        site = sites[supply.site_id]
        found = classes.get(key)
        if found is None:
            classes[key] = PreviewClass(
                site.name,
                site.region,
                supply.device_slug,
                supply.scu_per_unit,
                supply.free_units,
                supply.min_price,
                supply.min_price,
            )
        else:
            found.free_units += supply.free_units
            found.min_price = min(found.min_price, supply.min_price)
            found.max_price = max(found.max_price, supply.min_price)
    ordered = sorted(classes.values(), key=lambda c: (c.min_price, c.site, c.device))
    return Preview(
        ordered,
        {k: v for k, v in excluded.items() if v},
        sum(c.free_units for c in ordered),
        affordable,
    )


@dataclass
class Level:
    price: Decimal
    units: int
    count: int


@dataclass
class BookClass:
    site: str
    region: str
    device: str
    scu_per_unit: Decimal
    asks: list[Level]
    bids: list[Level]
    last_price: Decimal | None


def _open_demands(market: Market, *, now: dt.datetime) -> list[tuple[Order, Demand]]:
    """Open, unexpired orders of a market with their constraints."""
    orders = Order.objects.filter(
        market=market, status__in=OPEN_ORDER_STATUSES, expires_at__gt=now
    ).prefetch_related("device_models")
    return [
        (order, demand_of(order, [d.slug for d in order.device_models.all()])) for order in orders
    ]


def _bid_terms(order: Order, scu: Decimal) -> tuple[Decimal, int]:
    """An order's limit per unit-hour for units of ``scu`` SCU (SCU-priced bids converted), and
    how many such units it still wants."""
    per_unit = order.limit_price * scu if order.price_per == "scu" else order.limit_price
    left = order.quantity - order.filled_quantity
    if order.quantity_kind == "units":
        return per_unit, int(left)
    return per_unit, int(left / scu) if scu else 0


def _last_prices(market: Market) -> dict[tuple[int, str], Decimal]:
    """(site id, device slug) → the price of the latest lease cleared there."""
    latest = (
        Lease.objects.filter(market=market)
        .order_by("pool__site_id", "pool__device_model__slug", "-round__number", "-pk")
        .distinct("pool__site_id", "pool__device_model__slug")
        .values_list("pool__site_id", "pool__device_model__slug", "price")
    )
    return {(site_id, slug): price for site_id, slug, price in latest}


def order_book(market: Market, *, now: dt.datetime) -> list[BookClass]:
    """The anonymous book per class (site × device model): asks and the bids that could use
    the class, by price per unit-hour (SCU-priced bids are converted at the class's SCU)."""
    supplies = [
        s for s in supply_of(market, now=now) if s.free_units > 0
    ]  # leased out: not for sale
    sites = {s.pk: s for s in Site.objects.filter(pk__in={s.site_id for s in supplies})}
    grouped: dict[ClassKey, list[Supply]] = {}
    for supply in supplies:
        grouped.setdefault(ClassKey(supply.site_id, supply.device_slug), []).append(supply)
    demands = _open_demands(market, now=now)
    last_prices = _last_prices(market)
    book = []
    for key, members in sorted(grouped.items(), key=lambda kv: (kv[0].site_id, kv[0].device_slug)):
        asks: dict[Decimal, Level] = {}
        for supply in members:
            level = asks.setdefault(supply.min_price, Level(supply.min_price, 0, 0))
            level.units += supply.free_units
            level.count += 1
        bids: dict[Decimal, Level] = {}
        scu = members[0].scu_per_unit
        for order, demand in demands:
            if all(exclusion(demand, supply) is not None for supply in members):
                continue
            per_unit, units = _bid_terms(order, scu)
            level = bids.setdefault(per_unit, Level(per_unit, 0, 0))
            level.units += units
            level.count += 1
        site = sites[key.site_id]
        book.append(
            BookClass(
                site.name,
                site.region,
                key.device_slug,
                scu,
                sorted(asks.values(), key=lambda lv: lv.price),
                sorted(bids.values(), key=lambda lv: -lv.price),
                last_prices.get((key.site_id, key.device_slug)),
            )
        )
    return book


def draft_demand(draft: OrderRequest, device_slugs: Sequence[str]) -> Demand:
    """The constraints of an order draft (not yet placed), for the preview."""
    return _demand(draft, draft.buyer_location, device_slugs)


# --------------------------------------------------------------------------- market data


def order_leases() -> QuerySet[Lease]:
    """Leases as an order shows them: by start, with their round and market."""
    return Lease.objects.select_related("round", "market").order_by("starts_at", "pk")


def rounds_of(market: Market) -> QuerySet[ClearingRound]:
    """A market's cleared rounds, newest (highest slot number) first."""
    return ClearingRound.objects.filter(market=market).order_by("-number")


def _classes() -> QuerySet[RoundClass]:
    return RoundClass.objects.order_by("device_slug", "region", "key")


def round_of(market: Market, number: int) -> ClearingRound | None:
    """One round with its classes (prefetched as ``classes``, by device, region and key)."""
    return (
        rounds_of(market)
        .filter(number=number)
        .prefetch_related(Prefetch("classes", queryset=_classes()))
        .first()
    )


def last_round(market: Market) -> ClearingRound | None:
    """The market's latest round, with its classes prefetched like ``round_of``."""
    return rounds_of(market).prefetch_related(Prefetch("classes", queryset=_classes())).first()


@dataclass(frozen=True)
class PricePoint:
    round: int
    delivery_start: dt.datetime
    price: Decimal  # per unit-hour: the lowest price among the group's classes in the round
    price_high: Decimal  # the highest (the same when one class was priced)
    price_per_scu: Decimal | None  # ``price`` per SCU-hour
    units: int  # traded in the group's classes in the round


@dataclass
class PriceSeries:
    device: str
    region: str
    scu_per_unit: Decimal
    points: list[PricePoint]


_SERIES = ("device_slug", "region", "scu_per_unit")


def price_history(
    market: Market,
    *,
    key: str | None = None,
    device: str | None = None,
    region: str | None = None,
    limit: int = 500,
) -> list[PriceSeries]:
    """Clearing prices over the rounds per device model, region and unit size (SCU per unit), only
    where they changed: a series' first priced round and every later one whose lowest or highest
    class price differs from its previous priced round. Rounds where the series had no price are
    skipped. Series, not class keys, because a class's key also records how many hours its
    offers have left, so the same pool's class key changes from round to round.

    Filtered by class key, device model and region; the latest ``limit`` points overall, oldest
    first within each series."""
    rows = RoundClass.objects.filter(round__market=market, price__isnull=False)
    if key:
        rows = rows.filter(key=key)
    if device:
        rows = rows.filter(device_slug=device)
    if region:
        rows = rows.filter(region=region)
    prices = Concat(Cast(Min("price"), CharField()), Value("/"), Cast(Max("price"), CharField()))
    # One row per series and round; the window compares it with the series' previous round, and
    # the filter on it applies to the window's result (Django runs the window in a subquery).
    changed = (
        rows.values(*_SERIES, number=F("round__number"), start=F("round__delivery_start"))
        .annotate(low=Min("price"), high=Max("price"), units=Sum("units"), prices=prices)
        .annotate(
            previous=Window(
                # django-stubs types Lag's default as an int; Django takes any expression.
                Lag("prices", default=Value("")),  # type: ignore[arg-type]
                partition_by=[F(name) for name in _SERIES],
                order_by=F("round__number").asc(),
            )
        )
        .exclude(previous=F("prices"))
        .order_by("-number", *_SERIES)[:limit]
    )
    series: dict[tuple[str, str, Decimal], PriceSeries] = {}
    for row in reversed(list(changed)):
        group = (row["device_slug"], row["region"], row["scu_per_unit"])
        scu = group[2]
        series.setdefault(group, PriceSeries(*group, [])).points.append(
            PricePoint(
                row["number"],
                row["start"],
                row["low"],
                row["high"],
                # as RoundClass.price_per_scu
                (row["low"] / scu).quantize(Decimal("0.000001")) if scu else None,
                row["units"],
            )
        )
    return [series[group] for group in sorted(series)]


@dataclass(frozen=True)
class DepthPoint:
    price: Decimal  # per unit-hour
    units: int  # cumulative


@dataclass
class Depth:
    """The book's cumulative curves for one device model and unit size: ``bids`` from the highest
    limit down (units wanted at or above each price), ``asks`` from the lowest minimum up (free
    units offered at or below each price)."""

    device: str
    scu_per_unit: Decimal
    bids: list[DepthPoint]
    asks: list[DepthPoint]


def _cumulative(levels: dict[Decimal, int], *, descending: bool) -> list[DepthPoint]:
    points, total = [], 0
    for price in sorted(levels, reverse=descending):
        total += levels[price]
        points.append(DepthPoint(price, total))
    return points


def depth(market: Market, *, now: dt.datetime) -> list[Depth]:
    """Depth per device model and unit size (SCU per unit), from the same supply and open orders
    as ``order_book``. An order counts once per group, however many of its classes it could use;
    offers with no free units and orders with nothing left to fill are left out."""
    groups: dict[tuple[str, Decimal], list[Supply]] = {}
    for supply in supply_of(market, now=now):
        if supply.free_units > 0:
            groups.setdefault((supply.device_slug, supply.scu_per_unit), []).append(supply)
    demands = _open_demands(market, now=now)
    out = []
    for (device_slug, scu), members in sorted(groups.items()):
        asks: dict[Decimal, int] = {}
        for supply in members:
            asks[supply.min_price] = asks.get(supply.min_price, 0) + supply.free_units
        bids: dict[Decimal, int] = {}
        for order, demand in demands:
            if all(exclusion(demand, supply) is not None for supply in members):
                continue
            per_unit, units = _bid_terms(order, scu)
            if units > 0:
                bids[per_unit] = bids.get(per_unit, 0) + units
        out.append(
            Depth(
                device_slug,
                scu,
                _cumulative(bids, descending=True),
                _cumulative(asks, descending=False),
            )
        )
    return out


# --------------------------------------------------------------------------- leases


class LeaseRole(TextChoices):
    """An organization's side of a lease."""

    BUYER = "buyer", _("Buyer")
    PROVIDER = "provider", _("Provider")


def leases_of(organization: Organization | None, *, role: str | None = None) -> QuerySet[Lease]:
    """The leases an organization is party to, as buyer or provider (``role`` narrows to one
    side), newest first; ``None``: every lease (the regulator's read-only view)."""
    leases = Lease.objects.select_related(
        "market", "buyer", "provider", "order", "offer", "pool__site", "pool__device_model"
    ).order_by("-pk")
    if organization is None:
        return leases
    if role == LeaseRole.BUYER:
        return leases.filter(buyer=organization)
    if role == LeaseRole.PROVIDER:
        return leases.filter(provider=organization)
    return leases.filter(Q(buyer=organization) | Q(provider=organization))


def lease_with_history(leases: QuerySet[Lease], public_id: uuid.UUID) -> Lease | None:
    """One lease of ``leases`` with its settlements (by number) and events (by time)."""
    return (
        leases.filter(public_id=public_id)
        .prefetch_related(
            Prefetch("settlements", queryset=Settlement.objects.order_by("number")),
            Prefetch("events", queryset=LeaseEvent.objects.order_by("at", "pk")),
        )
        .first()
    )


@dataclass(frozen=True)
class LeaseSummary:
    """A lease as it stands at ``as_of``. Money in the lease market's minor units."""

    as_of: dt.datetime
    status: str
    currency: str
    elapsed_seconds: int  # of the lease's window, up to its end or now
    delivered_unit_seconds: int
    availability: Decimal | None  # delivered ÷ (units × elapsed); None before the start
    charged: int  # Σ settlement charges
    buyer_fees: int  # Σ settlement buyer fees
    platform_fees: int  # Σ settlement platform fees
    sla_credits: int  # Σ credits to the buyer (with any reclaim penalty)
    refunded: int  # what the final settlement returned to the buyer
    unsettled_estimate: int  # price × delivered since the last settlement: an estimate
    settlements: int
    next_settlement_at: dt.datetime | None  # None once the lease is settled for good

    @property
    def unit_hours_delivered(self) -> Decimal:
        return (Decimal(self.delivered_unit_seconds) / 3600).quantize(Decimal("0.01"))

    @property
    def cost_so_far(self) -> int:
        """Charged plus the unsettled estimate (so itself an estimate while the lease runs)."""
        return self.charged + self.unsettled_estimate


def lease_summaries(leases: Sequence[Lease], *, now: dt.datetime) -> dict[int, LeaseSummary]:
    """Live summaries (by lease pk): status, availability and usage so far, what was charged and
    an estimate of what was delivered since the last settlement, and when the next one is due.

    A lease settled for good reads what its final settlement counted; a running one asks metering
    for the heartbeats so far (one statement for all of them, another for the settlements' sums).
    Heartbeats count whole minutes, so availability is capped at 1 within a minute."""
    sums = {
        row["lease_id"]: row
        for row in Settlement.objects.filter(lease__in=[lease.pk for lease in leases])
        .values("lease_id")
        .annotate(
            charged=Sum("charge"),
            buyer_fees=Sum("buyer_fee"),
            platform_fees=Sum("platform_fee"),
            sla_credits=Sum("sla_credit"),
            refunded=Sum("refund"),
            delivered=Max("delivered_unit_seconds"),  # cumulative, never decreasing
            last_at=Max("at"),
            count=Count("pk"),
            finals=Count("pk", filter=Q(final=True)),
        )
    }
    interval = dt.timedelta(seconds=settings.SETTLEMENT_INTERVAL_SECONDS)
    running = [
        lease
        for lease in leases
        if not sums.get(lease.pk, {}).get("finals")
        and (lease.closed_at or min(now, lease.ends_at)) > lease.starts_at
    ]
    counted = dict(
        zip(
            [lease.pk for lease in running],
            metering.delivered_many(
                [lease_window(lease, now=now) for lease in running],
                through_id=metering.last_event_id() if running else 0,
            ),
            strict=True,
        )
    )
    out = {}
    for lease in leases:
        done = sums.get(lease.pk, {})
        settled = done.get("delivered") or 0
        end = lease.closed_at or min(now, lease.ends_at)
        elapsed = max(0, int((end - lease.starts_at).total_seconds()))
        final = bool(done.get("finals"))
        delivered = counted.get(lease.pk, settled)
        charged = done.get("charged") or 0
        estimate = 0
        if not final and delivered > settled:
            new = Decimal(delivered - settled)
            estimate = min(
                cost(lease.price * new / 3600, 1, lease.market.currency), lease.cost - charged
            )
        availability = None
        if elapsed:
            ratio = Decimal(delivered) / (lease.units * elapsed)
            availability = min(Decimal(1), ratio).quantize(Decimal("0.000001"))
        out[lease.pk] = LeaseSummary(
            as_of=now,
            status=lease.status,
            currency=lease.market.currency,
            elapsed_seconds=elapsed,
            delivered_unit_seconds=delivered,
            availability=availability,
            charged=charged,
            buyer_fees=done.get("buyer_fees") or 0,
            platform_fees=done.get("platform_fees") or 0,
            sla_credits=done.get("sla_credits") or 0,
            refunded=done.get("refunded") or 0,
            unsettled_estimate=estimate,
            settlements=done.get("count") or 0,
            next_settlement_at=None
            if final or lease.closed_at is not None
            else max(done.get("last_at") or lease.starts_at, lease.starts_at) + interval,
        )
    return out


def lease_summary(lease: Lease, *, now: dt.datetime) -> LeaseSummary:
    return lease_summaries([lease], now=now)[lease.pk]


# --------------------------------------------------------------------------- statements


def month_bounds(month: str) -> tuple[dt.datetime, dt.datetime] | None:
    """``"2026-11"`` → [2026-11-01, 2026-12-01) in UTC; None for anything else."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", month)
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    year, number = int(match[1]), int(match[2])
    try:
        start = dt.datetime(year, number, 1, tzinfo=dt.UTC)
        end = dt.datetime(year + number // 12, number % 12 + 1, 1, tzinfo=dt.UTC)
    except ValueError:  # the month after 9999-12
        return None
    return start, end


@dataclass(frozen=True)
class StatementLine:
    """One settlement as one side of its lease sees it, in minor units."""

    at: dt.datetime
    lease: uuid.UUID
    settlement: int
    final: bool
    charge: int
    fee: int  # buyer: the buyer fee; provider: the platform fee
    sla_credit: int  # buyer: received; provider: paid (with any reclaim penalty)
    refund: int  # buyer: the rest of the hold returned at the end; provider: always 0
    net: int  # buyer: charge + fee − credit (what it cost); provider: charge − fee − credit


_TOTALS = ("charge", "fee", "sla_credit", "refund", "net")


@dataclass(frozen=True)
class StatementTotals:
    charge: int
    fee: int
    sla_credit: int
    refund: int
    net: int


@dataclass(frozen=True)
class StatementSide:
    lines: list[StatementLine]

    @property
    def totals(self) -> StatementTotals:
        return StatementTotals(
            *(sum(getattr(line, name) for line in self.lines) for name in _TOTALS)
        )


@dataclass(frozen=True)
class MonthlyStatement:
    organization: Organization
    month: str  # yyyy-mm
    currency: str
    start: dt.datetime
    end: dt.datetime
    buyer: StatementSide  # settlements of leases it bought
    provider: StatementSide  # settlements of leases it provided


def monthly_statement(
    organization: Organization, *, start: dt.datetime, end: dt.datetime, currency: str
) -> MonthlyStatement:
    """The settlements made in ``[start, end)`` of the organization's leases in ``currency``:
    as buyer (charges, buyer fees, SLA credits received, refunds) and as provider (charges,
    platform fees, SLA credits paid, net proceeds), oldest first, with totals."""
    settlements = (
        Settlement.objects.filter(
            Q(lease__buyer=organization) | Q(lease__provider=organization),
            lease__market__currency=currency,
            at__gte=start,
            at__lt=end,
        )
        .select_related("lease")
        .order_by("at", "lease_id", "number")
    )
    bought, provided = [], []
    for s in settlements:
        common = (s.at, s.lease.public_id, s.number, s.final, s.charge)
        if s.lease.buyer_id == organization.pk:
            net = s.charge + s.buyer_fee - s.sla_credit
            bought.append(StatementLine(*common, s.buyer_fee, s.sla_credit, s.refund, net))
        if s.lease.provider_id == organization.pk:
            net = s.charge - s.platform_fee - s.sla_credit
            provided.append(StatementLine(*common, s.platform_fee, s.sla_credit, 0, net))
    month = start.strftime("%Y-%m")
    return MonthlyStatement(
        organization, month, currency, start, end, StatementSide(bought), StatementSide(provided)
    )


STATEMENT_CSV_HEADER = [
    "line",
    "role",
    "settled_at",
    "lease",
    "settlement",
    "final",
    "charge_minor",
    "fee_minor",
    "sla_credit_minor",
    "refund_minor",
    "net_minor",
    "currency",
]


def statement_csv(statement: MonthlyStatement) -> str:
    """One row per settlement and side (``fee`` is the buyer fee for the buyer, the platform fee
    for the provider), then one ``total`` row per side. Amounts in minor units."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(STATEMENT_CSV_HEADER)
    sides = [(LeaseRole.BUYER, statement.buyer), (LeaseRole.PROVIDER, statement.provider)]
    for role, side in sides:
        for line in side.lines:
            when, final = line.at.isoformat(), "true" if line.final else "false"
            amounts = [line.charge, line.fee, line.sla_credit, line.refund, line.net]
            row = ["settlement", role.value, when, line.lease, line.settlement, final, *amounts]
            writer.writerow([*row, statement.currency])
    for role, side in sides:
        t = side.totals
        amounts = [t.charge, t.fee, t.sla_credit, t.refund, t.net]
        writer.writerow(["total", role.value, "", "", "", "", *amounts, statement.currency])
    return buffer.getvalue()
