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
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from ledger.money import Money
from marketplace.core import access
from marketplace.core.errors import DomainError, NotFound
from marketplace.models import (
    ClearingRound,
    Market,
    Order,
    RoundClass,
)
from marketplace.portal.forms import attach
from marketplace.portal.helpers import (
    SCU_PLACES,
    HtmxHttpRequest,
    form_status,
    is_market_wide,
    membership_or_none,
    page_of,
    per_scu,
    plain,
    principal_of,
    reader_of,
)
from marketplace.trading import market_data, queries
from marketplace.trading import orders as trading_orders
from marketplace.trading.forms import OrderFilterForm, OrderForm

ROUNDS_PAGE_SIZE = 20
HISTORY_POINTS = 500  # the latest price changes the page charts

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
            for d in market_data.depth(market, now=now)
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
    last = market_data.last_round(market)
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
            for s in market_data.price_history(market, limit=HISTORY_POINTS)
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
    rounds = Paginator(market_data.rounds_of(market), ROUNDS_PAGE_SIZE).get_page(
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
    return access.orders_visible_to(reader_of(request)).select_related("market", "organization")


def _own_order(request: HtmxHttpRequest, order_id: uuid.UUID) -> Order:
    """One of the acting organization's orders; any other is simply not found."""
    return access.one_of(
        access.orders_visible_to(principal_of(request)), order_id, missing=_("No such order.")
    )


@login_required
@require_GET
def order_list(request: HtmxHttpRequest) -> HttpResponse:
    filters = OrderFilterForm(request.GET)
    orders = _visible_orders(request).order_by("-created_at", "-pk")
    if filters.is_valid() and filters.cleaned_data["status"]:
        orders = orders.filter(status=filters.cleaned_data["status"])
    page = page_of(request, orders)
    context = {
        "filters": filters,
        "orders": page,
        "rows": [(order, plain(order.limit_price)) for order in page],
        "market_wide": is_market_wide(request),
        "status": filters.cleaned_data.get("status", "") if filters.is_valid() else "",
    }
    return render(request, "marketplace/market/orders.html", context)


@login_required
def order_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = principal_of(request)
    now = timezone.now()
    form = OrderForm(request.POST or None, initial=OrderForm.initial_for(now))
    if request.method == "POST" and form.is_valid():
        try:
            order = trading_orders.place_order(
                principal=principal, request=form.order_request(), now=now
            )
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
        status=form_status(form),
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
    principal = principal_of(request)
    principal.require_scope("read")
    form = OrderForm(request.POST)
    context: dict[str, Any] = {"form": form, "previewing": True}
    if form.is_valid():
        draft = form.order_request()
        now = timezone.now()
        try:
            devices = trading_orders.validate_order(draft, now=now)
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
                "hold": Money(trading_orders.hold_amount(draft), draft.market.currency),
                "market": draft.market,
            }
    return render(
        request, "marketplace/market/order_form.html#preview", context, status=form_status(form)
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
    acting = membership_or_none(request)
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
        "market_wide": is_market_wide(request),
        **extra,
    }


@login_required
@require_POST
def order_cancel(request: HtmxHttpRequest, order_id: uuid.UUID) -> HttpResponse:
    order = _own_order(request, order_id)
    try:
        order = trading_orders.cancel_order(
            principal=principal_of(request), order=order, now=timezone.now()
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
