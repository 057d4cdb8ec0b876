"""The market portal: the public book and market data, a buyer's orders, a provider's supply.

Thin function views like ``views.py``: each finds the acting organization (or the regulator's
market-wide read access), validates with a form, calls one service or query and renders. Rules
live in the services; their DomainErrors are shown next to the field they name.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from ledger.money import Money
from marketplace import queries, services
from marketplace.access import Principal, principal_for_member
from marketplace.errors import DomainError, NotFound
from marketplace.forms import OfferForm, OrderFilterForm, OrderForm, PoolForm, SiteForm, attach
from marketplace.models import (
    ClearingRound,
    Market,
    Membership,
    Offer,
    Order,
    Pool,
    RoundClass,
    Site,
)
from marketplace.services.market import OFFER_TRANSITIONS
from marketplace.views import HtmxHttpRequest, _status

PAGE_SIZE = 50
ROUNDS_PAGE_SIZE = 20
HISTORY_POINTS = 500  # the latest price changes the page charts
SCU_PLACES = Decimal("0.0001")

# What each reason code of ``marketplace.compat.exclusion`` means to a buyer.
EXCLUSION_LABELS = {
    "hardware": gettext_lazy("Not one of the chosen device models"),
    "memory": gettext_lazy("Too little memory per unit"),
    "scu_per_unit": gettext_lazy("Too little SCU per unit"),
    "region": gettext_lazy("Outside the allowed regions"),
    "jurisdiction": gettext_lazy("Outside the allowed jurisdictions"),
    "latency": gettext_lazy("Too far away for the latency limit"),
    "renewable_share": gettext_lazy("Renewable share too low"),
    "pue": gettext_lazy("PUE too high"),
    "verified": gettext_lazy("Pool not verified"),
    "lease_length": gettext_lazy("Lease length outside the offer's limits"),
    "availability_window": gettext_lazy("Not available in the start window"),
    "no_free_units": gettext_lazy("No free units"),
}
ORDER_EVENT_LABELS = {
    "placed": gettext_lazy("Placed"),
    "filled": gettext_lazy("Filled"),
    "partially_filled": gettext_lazy("Partially filled"),
    "cancel_requested": gettext_lazy("Cancel requested"),
    "cancelled": gettext_lazy("Cancelled"),
    "expired": gettext_lazy("Expired"),
}
OFFER_ACTION_LABELS = {
    "pause": gettext_lazy("Pause"),
    "resume": gettext_lazy("Resume"),
    "withdraw": gettext_lazy("Withdraw"),
}


def per_scu(price: Decimal, scu_per_unit: Decimal) -> Decimal | None:
    """A price per unit-hour as a price per SCU-hour, to 4 decimals (None for a 0-SCU unit)."""
    return (price / scu_per_unit).quantize(SCU_PLACES) if scu_per_unit else None


def plain(price: Decimal) -> Decimal:
    """A stored price without the storage's trailing zeros: 80.000000 → 80.00, 3.294702 stays."""
    cents = price.quantize(Decimal("0.01"))
    return cents if cents == price else price.normalize()


# --------------------------------------------------------------------------- who acts


def _acting_or_none(request: HtmxHttpRequest) -> Membership | None:
    """The membership the user acts for: the organization chosen in the session, else the first
    one (the same rule as the navigation's "acting" marker)."""
    memberships = list(queries.memberships_of(request.user))
    return queries.acting_membership(memberships, request.session.get("organization"))


def _acting(request: HtmxHttpRequest) -> Membership:
    membership = _acting_or_none(request)
    if membership is None:
        raise NotFound(_("Create or join an organization first."))
    return membership


def _principal(request: HtmxHttpRequest) -> Principal:
    return principal_for_member(_acting(request))


def _market_wide(request: HtmxHttpRequest) -> bool:
    """Regulators read every organization's orders and offers (and change none)."""
    return request.user.is_regulator


def _page(request: HtmxHttpRequest, queryset: QuerySet[Any]) -> Page[Any]:
    return Paginator(queryset, PAGE_SIZE).get_page(request.GET.get("page"))


# --------------------------------------------------------------------------- the book


@dataclass(frozen=True)
class LevelRow:
    price: Decimal
    price_per_scu: Decimal | None
    units: int
    count: int


@dataclass(frozen=True)
class BookRow:
    book: queries.BookClass
    asks: list[LevelRow]
    bids: list[LevelRow]


def _levels(levels: list[queries.Level], scu: Decimal) -> list[LevelRow]:
    return [LevelRow(plain(lv.price), per_scu(lv.price, scu), lv.units, lv.count) for lv in levels]


@require_GET
def market_index(request: HtmxHttpRequest) -> HttpResponse:
    market = Market.objects.filter(active=True).order_by("pk").first()
    if market is None:
        raise NotFound(_("No market is open."))
    return redirect("market", slug=market.slug)


@dataclass(frozen=True)
class PriceRow:
    cls: RoundClass
    price: Decimal | None
    price_per_scu: Decimal | None


@dataclass(frozen=True)
class RoundRow:
    round: ClearingRound
    payments: Money
    violations: list[str]


def _book_context(market: Market) -> dict[str, Any]:
    """The live book and its depth chart (what changes with every order and offer)."""
    now = timezone.now()
    book = queries.order_book(market, now=now)
    depth = {
        "labels": {
            "bids": _("Demand (bids)"),
            "asks": _("Supply (asks)"),
            "x": _("Price per unit-hour (%(currency)s)") % {"currency": market.currency},
            "y": _("Cumulative units"),
        },
        "groups": [
            {
                "title": _("%(device)s · %(scu)s SCU per unit")
                % {"device": d.device, "scu": d.scu_per_unit.quantize(SCU_PLACES)},
                "bids": [[str(p.price), p.units] for p in d.bids],
                "asks": [[str(p.price), p.units] for p in d.asks],
            }
            for d in queries.depth(market, now=now)
        ],
    }
    return {
        "rows": [
            BookRow(c, _levels(c.asks, c.scu_per_unit), _levels(c.bids, c.scu_per_unit))
            for c in book
        ],
        "depth": depth,
    }


def _data_context(market: Market) -> dict[str, Any]:
    """The last round's class prices and the price history (what changes each round)."""
    last = queries.last_round(market)
    history = {
        "labels": {
            "x": _("Delivery start (UTC)"),
            "y": _("Price per SCU-hour (%(currency)s)") % {"currency": market.currency},
            "unit": _("per unit-hour"),
            "scu": _("per SCU-hour"),
        },
        "series": [
            {
                "label": f"{s.device} · {s.region} ({s.scu_per_unit.quantize(SCU_PLACES)} SCU)",
                "points": [
                    [
                        p.delivery_start.isoformat(),
                        str(p.price_per_scu),
                        str(plain(p.price))
                        if p.price == p.price_high
                        else f"{plain(p.price)}–{plain(p.price_high)}",
                    ]
                    for p in s.points
                    if p.price_per_scu is not None
                ],
            }
            for s in queries.price_history(market, limit=HISTORY_POINTS)
        ],
    }
    return {
        "last": last,
        "prices": [
            PriceRow(
                c,
                None if c.price is None else plain(c.price),
                None if c.price is None else per_scu(c.price, c.scu_per_unit),
            )
            for c in (last.classes.all() if last is not None else [])
        ],
        "history": history,
    }


def _rounds_context(request: HtmxHttpRequest, market: Market) -> dict[str, Any]:
    """A page of the market's rounds, newest first, with their certificates' verdicts."""
    rounds = Paginator(queries.rounds_of(market), ROUNDS_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    return {
        "rounds": rounds,
        "round_rows": [
            RoundRow(
                r,
                Money(r.buyer_payments, market.currency),
                [str(v) for v in r.certificate.get("violations", [])],
            )
            for r in rounds
        ],
    }


@require_GET
def market_book(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    """Public and anonymous. htmx polls it for one section, named by the request's target: the
    last round and price history (``market-data``), the rounds (``rounds``) or, by default, the
    book with its depth chart (``book``)."""
    market = Market.objects.filter(slug=slug).first()
    if market is None:
        raise NotFound(_("No such market."))
    template = "marketplace/market/market.html"
    context: dict[str, Any] = {"market": market}
    if request.htmx:
        target = request.htmx.target
        if target == "market-data":
            return render(request, f"{template}#data", context | _data_context(market))
        if target == "rounds":
            return render(request, f"{template}#rounds", context | _rounds_context(request, market))
        return render(request, f"{template}#book", context | _book_context(market))
    context |= {
        "markets": Market.objects.filter(active=True).order_by("pk"),
        "price_tick": plain(market.price_tick),
        **_data_context(market),
        **_book_context(market),
        **_rounds_context(request, market),
    }
    return render(request, template, context)


# --------------------------------------------------------------------------- orders


def _visible_orders(request: HtmxHttpRequest) -> QuerySet[Order]:
    orders = Order.objects.select_related("market", "organization")
    if _market_wide(request):
        return orders
    return orders.filter(organization=_acting(request).organization)


def _own_order(request: HtmxHttpRequest, order_id: uuid.UUID) -> Order:
    """One of the acting organization's orders; any other is simply not found."""
    order = Order.objects.filter(
        public_id=order_id, organization=_acting(request).organization
    ).first()
    if order is None:
        raise NotFound(_("No such order."))
    return order


@login_required
@require_GET
def order_list(request: HtmxHttpRequest) -> HttpResponse:
    filters = OrderFilterForm(request.GET)
    orders = _visible_orders(request).order_by("-created_at", "-pk")
    if filters.is_valid() and filters.cleaned_data["status"]:
        orders = orders.filter(status=filters.cleaned_data["status"])
    page = _page(request, orders)
    context = {
        "filters": filters,
        "orders": page,
        "rows": [(order, plain(order.limit_price)) for order in page],
        "market_wide": _market_wide(request),
        "status": filters.cleaned_data.get("status", "") if filters.is_valid() else "",
    }
    return render(request, "marketplace/market/orders.html", context)


@login_required
def order_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = _principal(request)
    now = timezone.now()
    form = OrderForm(request.POST or None, initial=OrderForm.initial_for(now))
    if request.method == "POST" and form.is_valid():
        try:
            order = services.place_order(principal=principal, request=form.order_request(), now=now)
        except DomainError as error:
            attach(form, error)
        else:
            messages.success(
                request,
                _("Order placed. %(hold)s is held until it fills, is cancelled or expires.")
                % {"hold": Money(order.hold_amount, order.market.currency)},
            )
            return redirect("order", order_id=order.public_id)
    return render(
        request,
        "marketplace/market/order_form.html",
        {"form": form, "organization": principal.organization},
        status=_status(form),
    )


@dataclass(frozen=True)
class PreviewRow:
    supply: queries.PreviewClass
    min_price: Decimal
    max_price: Decimal
    min_per_scu: Decimal | None
    max_per_scu: Decimal | None


@login_required
@require_POST
def order_preview(request: HtmxHttpRequest) -> HttpResponse:
    """Pre-trade feasibility of the form's draft: nothing is placed or held."""
    principal = _principal(request)
    principal.require_scope("read")
    form = OrderForm(request.POST)
    context: dict[str, Any] = {"form": form, "previewing": True}
    if form.is_valid():
        draft = form.order_request()
        now = timezone.now()
        try:
            devices = services.validate_order(draft, now=now)
        except DomainError as error:
            attach(form, error)
        else:
            result = queries.preview(
                queries.draft_demand(draft, [d.slug for d in devices]),
                market=draft.market,
                limit_price=draft.limit_price,
                price_per_scu=draft.price_per == "scu",
                now=now,
            )
            context |= {
                "preview": result,
                "classes": [
                    PreviewRow(
                        c,
                        plain(c.min_price),
                        plain(c.max_price),
                        per_scu(c.min_price, c.scu_per_unit),
                        per_scu(c.max_price, c.scu_per_unit),
                    )
                    for c in result.classes
                ],
                "excluded": [(EXCLUSION_LABELS[k], n) for k, n in result.excluded.items()],
                "hold": Money(services.hold_amount(draft), draft.market.currency),
                "market": draft.market,
            }
    return render(
        request, "marketplace/market/order_form.html#preview", context, status=_status(form)
    )


@login_required
@require_GET
def order_detail(request: HtmxHttpRequest, order_id: uuid.UUID) -> HttpResponse:
    order = (
        _visible_orders(request)
        .filter(public_id=order_id)
        .prefetch_related("device_models")
        .first()
    )
    if order is None:
        raise NotFound(_("No such order."))
    return render(request, "marketplace/market/order.html", _order_context(request, order))


def _order_context(request: HtmxHttpRequest, order: Order, **extra: Any) -> dict[str, Any]:
    acting = _acting_or_none(request)
    own = acting is not None and acting.organization_id == order.organization_id
    return {
        "order": order,
        "events": [
            (event, ORDER_EVENT_LABELS.get(event.kind, event.kind))
            for event in order.events.order_by("at", "pk")
        ],
        "leases": [
            (lease, plain(lease.price), Money(lease.cost, order.market.currency))
            for lease in queries.order_leases().filter(order=order)
        ],
        "hold": Money(order.hold_amount, order.market.currency),
        "limit_price": plain(order.limit_price),
        "can_cancel": own and order.is_open and order.cancel_requested_at is None,
        "market_wide": _market_wide(request),
        **extra,
    }


@login_required
@require_POST
def order_cancel(request: HtmxHttpRequest, order_id: uuid.UUID) -> HttpResponse:
    order = _own_order(request, order_id)
    try:
        order = services.cancel_order(
            principal=_principal(request), order=order, now=timezone.now()
        )
    except DomainError as error:
        order.refresh_from_db()
        context = _order_context(request, order, error=error)
        return render(request, "marketplace/market/order.html", context, status=400)
    if order.is_open:
        messages.info(request, _("Cancel requested; it takes effect after the running round."))
    else:
        messages.success(request, _("Order cancelled; its hold is released."))
    return redirect("order", order_id=order.public_id)


# --------------------------------------------------------------------------- supply


@dataclass(frozen=True)
class OfferRow:
    offer: Offer
    min_price: Decimal
    price_per_scu: Decimal | None
    actions: list[tuple[str, str]]  # (action, label) the offer's status allows


def _offer_rows(offers: Page[Offer], *, read_only: bool) -> list[OfferRow]:
    return [
        OfferRow(
            offer,
            plain(offer.min_price),
            per_scu(offer.min_price, offer.pool.scu_per_unit),
            []
            if read_only
            else [
                (action, str(OFFER_ACTION_LABELS[action]))
                for action, (allowed, _target) in OFFER_TRANSITIONS.items()
                if offer.status in allowed
            ],
        )
        for offer in offers
    ]


def _supply_context(request: HtmxHttpRequest, **extra: Any) -> dict[str, Any]:
    market_wide = _market_wide(request)
    sites = Site.objects.select_related("organization").order_by("organization__legal_name", "name")
    pools = Pool.objects.select_related("site__organization", "device_model").order_by(
        "site__organization__legal_name", "site__name", "name"
    )
    offers = Offer.objects.select_related(
        "market", "pool__site__organization", "pool__device_model"
    ).order_by("-created_at", "-pk")
    organization = None
    if not market_wide:
        organization = _acting(request).organization
        sites = sites.filter(organization=organization)
        pools = pools.filter(site__organization=organization)
        offers = offers.filter(pool__site__organization=organization)
    page = _page(request, offers)
    now = timezone.now()
    context: dict[str, Any] = {
        "market_wide": market_wide,
        "organization": organization,
        "sites": sites,
        "pools": pools,
        "offers": page,
        "offer_rows": _offer_rows(page, read_only=market_wide),
    }
    if organization is not None:
        context |= {
            "site_form": SiteForm(),
            "pool_form": PoolForm(organization=organization),
            "offer_form": OfferForm(organization=organization, initial=OfferForm.initial_for(now)),
        }
    return context | extra


def _supply_section(
    request: HtmxHttpRequest, section: str, context: dict[str, Any], status: int = 200
) -> HttpResponse:
    """htmx swaps just the section; without htmx the whole page is rendered."""
    template = "marketplace/market/supply.html"
    if request.htmx:
        template = f"{template}#{section}"
    return render(request, template, context, status=status)


@login_required
@require_GET
def supply(request: HtmxHttpRequest) -> HttpResponse:
    return render(request, "marketplace/market/supply.html", _supply_context(request))


@login_required
@require_POST
def site_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = _principal(request)
    form = SiteForm(request.POST)
    notice = None
    if form.is_valid():
        try:
            site = services.create_site(principal=principal, request=form.site_request())
        except DomainError as error:
            attach(form, error)
        else:
            notice = _("Site %(name)s added.") % {"name": site.name}
            form = SiteForm()
    context = _supply_context(request, site_form=form, notice=notice)
    return _supply_section(request, "supply", context, status=_status(form))


@login_required
@require_POST
def pool_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = _principal(request)
    form = PoolForm(request.POST, organization=principal.organization)
    notice = None
    if form.is_valid():
        try:
            pool = services.create_pool(principal=principal, request=form.pool_request())
        except DomainError as error:
            attach(form, error)
        else:
            notice = _("Pool %(name)s added.") % {"name": pool.name}
            form = PoolForm(organization=principal.organization)
    context = _supply_context(request, pool_form=form, notice=notice)
    return _supply_section(request, "supply", context, status=_status(form))


@login_required
@require_POST
def offer_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = _principal(request)
    form = OfferForm(request.POST, organization=principal.organization)
    notice = None
    if form.is_valid():
        try:
            services.create_offer(
                principal=principal, request=form.offer_request(), now=timezone.now()
            )
        except DomainError as error:
            attach(form, error)
        else:
            notice = _("Offer posted.")
            form = OfferForm(
                organization=principal.organization, initial=OfferForm.initial_for(timezone.now())
            )
    context = _supply_context(request, offer_form=form, notice=notice)
    return _supply_section(request, "supply", context, status=_status(form))


@login_required
@require_POST
def offer_action(request: HtmxHttpRequest, offer_id: uuid.UUID, action: str) -> HttpResponse:
    principal = _principal(request)
    offer = Offer.objects.filter(
        public_id=offer_id, pool__site__organization=principal.organization
    ).first()
    if offer is None or action not in OFFER_TRANSITIONS:
        raise NotFound(_("No such offer."))
    try:
        services.change_offer(principal=principal, offer=offer, action=action, now=timezone.now())
    except DomainError as error:
        context = _supply_context(request, offer_error=error.message)
        return _supply_section(request, "offers", context, status=400)
    return _supply_section(request, "offers", _supply_context(request))
