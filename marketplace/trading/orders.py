"""Supply and demand: sites, pools, offers and orders, with holds in the ledger.

Every function validates first and raises a DomainError (stable ``code``, the ``field`` at fault)
before it changes anything; then it writes in one transaction. An order's hold is a pending
ledger transfer from the buyer's wallet to the order's hold account, created in the same
transaction as the order: both exist, or neither.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import pycountry
from django.db import connection, transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from ledger import services as ledger
from ledger.models import Kind, Purpose
from ledger.money import cost
from marketplace.core import rows
from marketplace.core.access import Principal
from marketplace.core.errors import Conflict, InvalidInput, Unprocessable
from marketplace.core.owners import ledger_owner
from marketplace.models import (
    OPEN_ORDER_STATUSES,
    DeviceModel,
    FillPolicy,
    LatencyTier,
    Market,
    Order,
    OrderEvent,
    OrderStatus,
    Placement,
    QuantityKind,
    event_data,
)
from marketplace.trading.eligibility import Location
from marketplace.trading.rules import (
    BP,
    JURISDICTIONS_BEYOND_COUNTRIES,
    check_jurisdiction,
    check_region,
    check_tick,
    market_lock_id,
    require_side,
    try_lock,
)

HOLD_GRACE = dt.timedelta(days=1)  # the ledger voids a forgotten hold this long after expiry
DEVICES_WHERE = '"slug" = ANY(%s) AND "active"'  # the active models of a list of slugs
DEVICE_ORDER = tuple(DeviceModel._meta.ordering or ())  # the relation's order, as responses list
START_GRACE = dt.timedelta(minutes=5)  # clocks differ: a start this far in the past is "now"
VOID_NAMESPACE = uuid.UUID("2d3c4b5a-6978-4a1b-9c2d-3e4f5a6b7c8d")


# --------------------------------------------------------------------------- demand


@dataclass(frozen=True)
class OrderRequest:
    market: Market
    quantity: Decimal
    limit_price: Decimal
    duration_hours: int
    earliest_start: dt.datetime
    latest_start: dt.datetime
    quantity_kind: str = QuantityKind.UNITS
    price_per: str = QuantityKind.UNITS
    device_models: Sequence[str] = ()
    min_memory_gb: Decimal | None = None
    min_scu_per_unit: Decimal | None = None
    allowed_regions: Sequence[str] = ()
    allowed_jurisdictions: Sequence[str] = ()
    buyer_location: Location | None = None
    max_latency_tier: int | None = None
    min_renewable_share: Decimal | None = None
    max_pue: Decimal | None = None
    verified_only: bool = False
    placement: str = Placement.ANY
    fill: str = FillPolicy.PARTIAL
    min_fill: Decimal | None = None
    expires_at: dt.datetime | None = None
    # The active models of device_models in the catalog's order, if the caller loaded them
    # (rows.fetch_together with DEVICES_WHERE and DEVICE_ORDER); None: validate_order does.
    devices: list[DeviceModel] | None = field(default=None, compare=False)


def validate_order(request: OrderRequest, *, now: dt.datetime) -> list[DeviceModel]:
    """Every rule an order must satisfy; raises InvalidInput naming the field. Returns the
    acceptable device models. Nothing is written."""
    market = request.market
    if not market.active:
        raise Conflict(_("This market is closed."), code="market_closed", field="market")
    if request.quantity_kind != request.price_per:
        raise InvalidInput(
            _("Price per unit-hour goes with a quantity in units; per SCU-hour with SCU."),
            code="price_basis_mismatch",
            field="price_per",
        )
    if request.quantity_kind == QuantityKind.UNITS:
        if request.quantity != request.quantity.to_integral_value():
            raise InvalidInput(
                _("Units are whole numbers."), code="quantity_not_whole", field="quantity"
            )
        if request.quantity < 1:
            raise InvalidInput(
                _("Order at least one unit."), code="quantity_too_small", field="quantity"
            )
        if request.quantity > market.max_units_per_order:
            raise InvalidInput(
                _("At most %(max)d units per order in this market.")
                % {"max": market.max_units_per_order},
                code="quantity_above_maximum",
                field="quantity",
            )
    else:
        if request.quantity <= 0 or request.quantity.as_tuple().exponent < -3:  # type: ignore[operator]
            raise InvalidInput(
                _("Order a positive SCU amount with at most 3 decimals."),
                code="quantity_too_small",
                field="quantity",
            )
        if request.quantity > market.max_scu_per_order:
            raise InvalidInput(
                _("At most %(max)s SCU per order in this market.")
                % {"max": market.max_scu_per_order.normalize()},
                code="quantity_above_maximum",
                field="quantity",
            )
    check_tick(request.limit_price, market, "limit_price")
    if not 1 <= request.duration_hours <= min(720, market.max_duration_hours):
        raise InvalidInput(
            _("A lease lasts 1 to %(max)d hours.") % {"max": min(720, market.max_duration_hours)},
            code="duration_out_of_range",
            field="duration_hours",
        )
    if request.latest_start < request.earliest_start:
        raise InvalidInput(
            _("The latest start is before the earliest start."),
            code="start_window_inverted",
            field="latest_start",
        )
    if request.earliest_start < now - START_GRACE:
        raise InvalidInput(
            _("The start window begins in the past."), code="start_in_past", field="earliest_start"
        )
    if request.latest_start > now + dt.timedelta(hours=market.horizon_hours):
        raise InvalidInput(
            _("Start within %(hours)d hours from now.") % {"hours": market.horizon_hours},
            code="start_beyond_horizon",
            field="latest_start",
        )
    if request.expires_at is not None and not now < request.expires_at <= request.latest_start:
        raise InvalidInput(
            _("An order expires after now and no later than its latest start."),
            code="expiry_out_of_range",
            field="expires_at",
        )
    wanted = sorted(set(request.device_models))
    devices = request.devices
    if devices is None:
        devices = (
            rows.fetch(DeviceModel, DEVICES_WHERE, [wanted], order_by=DEVICE_ORDER)
            if wanted
            else []
        )
    if len(devices) != len(set(request.device_models)):
        unknown = sorted(set(request.device_models) - {d.slug for d in devices})
        raise InvalidInput(
            _("Unknown device model: %(slugs)s.") % {"slugs": ", ".join(unknown)},
            code="unknown_device",
            field="device_models",
        )
    for region in request.allowed_regions:
        check_region(region, "allowed_regions")
    for jurisdiction in request.allowed_jurisdictions:
        check_jurisdiction(jurisdiction, "allowed_jurisdictions")
    _check_constraints(request, devices)
    return devices


def _check_constraints(request: OrderRequest, devices: list[DeviceModel]) -> None:
    def contradiction(message: str, field: str) -> InvalidInput:
        return InvalidInput(message, code="contradictory_constraints", field=field)

    location = request.buyer_location
    if location is not None:
        if pycountry.countries.get(alpha_2=location.country) is None:
            raise InvalidInput(
                _("Unknown country code."), code="unknown_country", field="buyer_location.country"
            )
        if location.region:
            check_region(location.region, "buyer_location.region", location.country)
    if request.max_latency_tier is not None:
        if request.max_latency_tier not in LatencyTier.values:
            raise InvalidInput(
                _("Unknown latency tier."), code="invalid_choice", field="max_latency_tier"
            )
        if (
            location is None
            or (request.max_latency_tier <= LatencyTier.REGIONAL and not location.region)
            or (request.max_latency_tier == LatencyTier.CITY and not location.city)
        ):
            raise contradiction(
                _("A latency limit needs your location down to that level."), "buyer_location"
            )
    if request.min_renewable_share is not None and not 0 <= request.min_renewable_share <= 1:
        raise InvalidInput(
            _("A share is between 0 and 1."), code="share_out_of_range", field="min_renewable_share"
        )
    if request.max_pue is not None and request.max_pue < 1:
        raise InvalidInput(_("PUE is never below 1.00."), code="pue_out_of_range", field="max_pue")
    if request.allowed_regions and request.allowed_jurisdictions:
        countries = {r.split("-")[0] for r in request.allowed_regions}
        if not countries & set(request.allowed_jurisdictions) and not (
            set(request.allowed_jurisdictions) & JURISDICTIONS_BEYOND_COUNTRIES
        ):
            raise contradiction(
                _("None of the allowed regions lies in an allowed jurisdiction."), "allowed_regions"
            )
    if (
        devices
        and request.min_memory_gb is not None
        and all(d.memory_gb < request.min_memory_gb for d in devices)
    ):
        raise contradiction(_("None of the chosen devices has that much memory."), "min_memory_gb")
    if (
        request.fill == FillPolicy.PARTIAL
        and request.min_fill is not None
        and not 0 < request.min_fill <= request.quantity
    ):
        raise InvalidInput(
            _("The minimum fill is above zero and at most the quantity."),
            code="min_fill_out_of_range",
            field="min_fill",
        )
    if request.placement == Placement.SAME_POOL and request.quantity_kind == QuantityKind.SCU:
        raise contradiction(_("Same-pool placement is for orders in units."), "placement")


def hold_amount(request: OrderRequest) -> int:
    """Maximum cost plus maximum buyer fee, in minor units, through the one rounding function."""
    volume = request.quantity * request.duration_hours
    fee_rate = request.limit_price * request.market.buyer_fee_bps / BP
    return cost(request.limit_price, volume, request.market.currency) + cost(
        fee_rate, volume, request.market.currency
    )


def place_order(
    *, principal: Principal, request: OrderRequest, now: dt.datetime, savepoint: bool = True
) -> Order:
    """Validate, then create the order and its hold together. Raises Forbidden (not approved,
    not a buyer, no scope), InvalidInput (a rule), or Unprocessable ``insufficient_funds``;
    each leaves no order and no hold.

    Inside a caller's transaction the writes sit in a savepoint, so the caller may go on after
    a refusal; ``savepoint=False`` spares its two round trips for a caller whose transaction
    ends with any error (the API's idempotent request)."""
    require_side(principal, provider=False)
    devices = validate_order(request, now=now)
    amount = hold_amount(request)
    market = request.market
    # By default an order lives until the round that may start it last has run: that round
    # delivers at the latest start and clears within one interval after it.
    expires_at = request.expires_at or request.latest_start + dt.timedelta(
        seconds=market.round_seconds
    )
    location = request.buyer_location or Location(country="")
    with transaction.atomic(savepoint=savepoint):
        order = rows.insert(
            Order(
                market=market,
                organization=principal.organization,
                placed_by=principal.actor,
                quantity_kind=request.quantity_kind,
                quantity=request.quantity,
                min_memory_gb=request.min_memory_gb,
                min_scu_per_unit=request.min_scu_per_unit,
                duration_hours=request.duration_hours,
                earliest_start=request.earliest_start,
                latest_start=request.latest_start,
                limit_price=request.limit_price,
                price_per=request.price_per,
                allowed_regions=sorted(set(request.allowed_regions)),
                allowed_jurisdictions=sorted(set(request.allowed_jurisdictions)),
                buyer_country=location.country,
                buyer_region=location.region,
                buyer_city=location.city,
                max_latency_tier=request.max_latency_tier,
                min_renewable_share=request.min_renewable_share,
                max_pue=request.max_pue,
                verified_only=request.verified_only,
                placement=request.placement,
                fill=request.fill,
                min_fill=request.min_fill
                if request.fill == FillPolicy.PARTIAL and request.min_fill
                else request.quantity
                if request.fill == FillPolicy.ALL_OR_NONE
                else Decimal(1 if request.quantity_kind == QuantityKind.UNITS else "0.001"),
                expires_at=expires_at,
                hold_amount=amount,
                hold_transfer_id=uuid.uuid4(),
                created_at=now,
            )
        )
        _prefetched(order, devices)
        owner = ledger_owner(principal.organization)
        wallet = ledger.AccountKey(owner, Purpose.WALLET.value, market.currency)
        escrow = ledger.AccountKey(
            owner, Purpose.ORDER_HOLD.value, market.currency, f"order:{order.public_id}"
        )
        # One round trip for the devices, the event and the two accounts' statements: nobody
        # waits for the first two (a refused hold below rolls them back with the order).
        with rows.together():
            if devices:  # plain SQL: ``.set()`` reads the relation first, ``bulk_create``
                # costs six times the Python of the statement
                with connection.cursor() as cursor:
                    cursor.execute(
                        "INSERT INTO marketplace_order_device_models (order_id, devicemodel_id) "
                        "SELECT %s, unnest(%s::bigint[])",
                        [order.pk, [d.pk for d in devices]],
                    )
            rows.insert(
                OrderEvent(
                    order=order,
                    kind="placed",
                    status=order.status,
                    actor=principal.actor,
                    at=now,
                    data=event_data(
                        hold_amount=amount, limit_price=order.limit_price, quantity=order.quantity
                    ),
                ),
                wait=False,
            )
            accounts = ledger.open_accounts([wallet, escrow], now=now)
        timeout = int((expires_at - now + HOLD_GRACE).total_seconds())
        result = ledger.transfer(
            ledger.NewTransfer(
                id=order.hold_transfer_id,
                debit_account_id=accounts[wallet],
                credit_account_id=accounts[escrow],
                amount=amount,
                kind=Kind.PENDING,
                timeout=timeout,
                metadata={"order": str(order.public_id)},
            ),
            now=now,
        )
        if result != ledger.Result.OK:
            available = ledger_balance(accounts[wallet])
            raise Unprocessable(
                _("Insufficient funds: the order needs a hold of %(need)s, %(have)s available.")
                % {"need": _money(amount, market), "have": _money(available, market)},
                code="insufficient_funds",
                field="quantity",
            )
    return order


def _prefetched(order: Order, devices: list[DeviceModel]) -> None:
    """Give a new order its device models as ``prefetch_related`` would, so the response that
    lists them reads no more (``validate_order`` loaded them in the relation's own ordering)."""
    related = order.device_models.all()
    related._result_cache = devices
    related._prefetch_done = True  # type: ignore[attr-defined]
    order._prefetched_objects_cache = {"device_models": related}  # type: ignore[attr-defined]


def ledger_balance(account_id: int) -> int:
    from ledger import queries

    return queries.balance(account_id).available


def _money(minor: int, market: Market) -> str:
    from ledger.money import Money

    return str(Money(minor, market.currency))


def _void_hold(order: Order, *, reason: str, now: dt.datetime) -> None:
    void_id = uuid.uuid5(VOID_NAMESPACE, f"{reason}:{order.hold_transfer_id}")
    result = ledger.transfer(
        ledger.NewTransfer(
            id=void_id,
            kind=Kind.VOID,
            pending_id=order.hold_transfer_id,
            metadata={"order": str(order.public_id), "reason": reason},
        ),
        now=now,
    )
    # Already resolved means the ledger's own expiry (or an earlier run) voided it first.
    if result not in (
        ledger.Result.OK,
        ledger.Result.EXISTS,
        ledger.Result.PENDING_ALREADY_RESOLVED,
    ):
        raise RuntimeError(f"voiding the hold of {order.public_id} failed: {result}")


def cancel_order(*, principal: Principal, order: Order, now: dt.datetime) -> Order:
    """Cancel an open order and void its hold. While its market is clearing a round, the cancel
    is recorded and takes effect right after that round (returned with ``cancel_requested_at``).
    """
    principal.require_scope("trade")
    with transaction.atomic():
        locked = Order.objects.select_for_update().get(pk=order.pk)
        if locked.status not in OPEN_ORDER_STATUSES:
            raise Conflict(
                _("This order is %(status)s and cannot be cancelled.")
                % {"status": locked.get_status_display()},
                code="order_not_open",
                field="status",
            )
        if not try_lock(market_lock_id(locked.market)):
            if locked.cancel_requested_at is None:
                locked.cancel_requested_at = now
                locked.save(update_fields=["cancel_requested_at"])
                OrderEvent.objects.create(
                    order=locked,
                    kind="cancel_requested",
                    status=locked.status,
                    actor=principal.actor,
                    at=now,
                )
            return locked
        _close(locked, OrderStatus.CANCELLED, actor=principal.actor, now=now)
    return locked


def _close(order: Order, status: str, *, actor: str, now: dt.datetime) -> None:
    _void_hold(order, reason=status, now=now)
    order.status = status
    order.save(update_fields=["status"])
    OrderEvent.objects.create(order=order, kind=status, status=status, actor=actor, at=now)


def apply_requested_cancels(*, market: Market, now: dt.datetime) -> int:
    """Run by the clearing service after a round (under the market's lock)."""
    count = 0
    for order in Order.objects.select_for_update().filter(
        market=market, status__in=OPEN_ORDER_STATUSES, cancel_requested_at__isnull=False
    ):
        _close(order, OrderStatus.CANCELLED, actor="system:deferred-cancel", now=now)
        count += 1
    return count


def expire_orders(*, now: dt.datetime) -> int:
    """Expire open orders past their time in force and void their holds; markets that are
    clearing a round right now are skipped and caught on the next run."""
    count = 0
    for market in Market.objects.filter(
        Q(orders__status__in=OPEN_ORDER_STATUSES) & Q(orders__expires_at__lte=now)
    ).distinct():
        with transaction.atomic():
            if not try_lock(market_lock_id(market)):
                continue
            for order in Order.objects.select_for_update(skip_locked=True).filter(
                market=market, status__in=OPEN_ORDER_STATUSES, expires_at__lte=now
            ):
                _close(order, OrderStatus.EXPIRED, actor="system:expiry", now=now)
                count += 1
    return count
