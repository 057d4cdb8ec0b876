"""The portal's supply pages: a provider's sites, pools and offers, and the forms that add them
and change an offer."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Page
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_POST

from marketplace.core import access
from marketplace.core.errors import DomainError, NotFound
from marketplace.models import (
    Offer,
)
from marketplace.portal.forms import attach
from marketplace.portal.helpers import (
    HtmxHttpRequest,
    acting_member,
    form_status,
    is_market_wide,
    page_of,
    per_scu,
    plain,
    principal_of,
    reader_of,
)
from marketplace.trading import supply as trading_supply
from marketplace.trading.forms import OfferForm, PoolForm, SiteForm
from marketplace.trading.supply import OFFER_TRANSITIONS

OFFER_ACTION_LABELS = {
    "pause": gettext_lazy("Pause"),
    "resume": gettext_lazy("Resume"),
    "withdraw": gettext_lazy("Withdraw"),
}


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
    market_wide = is_market_wide(request)
    reader = reader_of(request)
    sites = access.sites_visible_to(reader).select_related("organization")
    pools = access.pools_visible_to(reader).select_related("site__organization", "device_model")
    offers = access.offers_visible_to(reader).select_related(
        "market", "pool__site__organization", "pool__device_model"
    )
    sites = sites.order_by("organization__legal_name", "name")
    pools = pools.order_by("site__organization__legal_name", "site__name", "name")
    offers = offers.order_by("-created_at", "-pk")
    organization = None if market_wide else acting_member(request).organization
    page = page_of(request, offers)
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
            "pool_form": PoolForm(reader=reader),
            "offer_form": OfferForm(reader=reader, initial=OfferForm.initial_for(now)),
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
    principal = principal_of(request)
    form = SiteForm(request.POST)
    notice = None
    if form.is_valid():
        try:
            site = trading_supply.create_site(principal=principal, request=form.site_request())
        except DomainError as error:
            attach(form, error)
        else:
            notice = _("Site %(name)s added.") % {"name": site.name}
            form = SiteForm()
    context = _supply_context(request, site_form=form, notice=notice)
    return _supply_section(request, "supply", context, status=form_status(form))


@login_required
@require_POST
def pool_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = principal_of(request)
    form = PoolForm(request.POST, reader=principal)
    notice = None
    if form.is_valid():
        try:
            pool = trading_supply.create_pool(principal=principal, request=form.pool_request())
        except DomainError as error:
            attach(form, error)
        else:
            notice = _("Pool %(name)s added.") % {"name": pool.name}
            form = PoolForm(reader=principal)
    context = _supply_context(request, pool_form=form, notice=notice)
    return _supply_section(request, "supply", context, status=form_status(form))


@login_required
@require_POST
def offer_create(request: HtmxHttpRequest) -> HttpResponse:
    principal = principal_of(request)
    form = OfferForm(request.POST, reader=principal)
    notice = None
    if form.is_valid():
        try:
            trading_supply.create_offer(
                principal=principal, request=form.offer_request(), now=timezone.now()
            )
        except DomainError as error:
            attach(form, error)
        else:
            notice = _("Offer posted.")
            form = OfferForm(reader=principal, initial=OfferForm.initial_for(timezone.now()))
    context = _supply_context(request, offer_form=form, notice=notice)
    return _supply_section(request, "supply", context, status=form_status(form))


@login_required
@require_POST
def offer_action(request: HtmxHttpRequest, offer_id: uuid.UUID, action: str) -> HttpResponse:
    principal = principal_of(request)
    offer = access.one_of(
        access.offers_visible_to(principal), offer_id, missing=_("No such offer.")
    )
    if action not in OFFER_TRANSITIONS:
        raise NotFound(_("No such offer."))
    try:
        trading_supply.change_offer(
            principal=principal, offer=offer, action=action, now=timezone.now()
        )
    except DomainError as error:
        context = _supply_context(request, offer_error=error.message)
        return _supply_section(request, "offers", context, status=400)
    return _supply_section(request, "offers", _supply_context(request))
