"""Leases in the portal: each lease live (htmx refreshes the list and a lease's summary every
5 s), a buyer's early end, a provider's reclaim notice, and the monthly statement (HTML, CSV).

Thin function views like ``views_market.py``: leases are scoped to the acting organization (as
buyer or provider); regulators read every lease and change none.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy
from django.views.decorators.http import require_GET, require_POST

from ledger.money import Money
from marketplace.core.access import Principal
from marketplace.core.errors import DomainError, Forbidden, NotFound
from marketplace.leases import agent, queries, statements
from marketplace.leases import services as leases_services
from marketplace.leases.forms import LeaseFilterForm, ReclaimForm, StatementForm
from marketplace.models import LIVE_LEASE_STATUSES, Lease, LeaseEvent, Organization
from marketplace.portal.forms import attach
from marketplace.portal.helpers import (
    HtmxHttpRequest,
    acting_member,
    form_status,
    page_of,
    plain,
    principal_of,
    reader_of,
)

LIST_TEMPLATE = "marketplace/leases/leases.html"
DETAIL_TEMPLATE = "marketplace/leases/lease.html"
STATEMENT_TEMPLATE = "marketplace/leases/statement.html"
EVENT_LABELS = {
    "provisioning": gettext_lazy("Provisioning"),
    "active": pgettext_lazy("lease status", "Active"),
    "reclaim_notice": gettext_lazy("Reclaim notice"),
    "completed": gettext_lazy("Completed"),
    "cancelled": gettext_lazy("Ended early by the buyer"),
    "reclaimed": gettext_lazy("Reclaimed"),
    "failed": gettext_lazy("Failed"),
}


def _note(event: LeaseEvent) -> str:
    """An event's reason in words: a known close reason's label, a reclaim time as UTC."""
    if event.kind == "reclaim_notice" and event.reason:
        try:
            return dt.datetime.fromisoformat(event.reason).strftime("%Y-%m-%d %H:%M UTC")
        except ValueError:
            return event.reason
    return str(EVENT_LABELS.get(event.reason, event.reason))


@dataclass(frozen=True)
class LiveLease:
    """A lease with its live summary, as one side (or a regulator) sees it; money as ``Money``."""

    lease: Lease
    summary: queries.LeaseSummary
    role: str  # "buyer", "provider", or "" for a regulator

    def _money(self, minor: int) -> Money:
        return Money(minor, self.lease.market.currency)

    @property
    def price(self) -> Decimal:
        return plain(self.lease.price)

    @property
    def cost(self) -> Money:
        return self._money(self.lease.cost)

    @property
    def buyer_fee(self) -> Money:
        return self._money(self.lease.buyer_fee)

    @property
    def charged(self) -> Money:
        return self._money(self.summary.charged)

    @property
    def estimate(self) -> Money:
        return self._money(self.summary.unsettled_estimate)

    @property
    def cost_so_far(self) -> Money:
        return self._money(self.summary.cost_so_far)

    @property
    def buyer_fees(self) -> Money:
        return self._money(self.summary.buyer_fees)

    @property
    def platform_fees(self) -> Money:
        return self._money(self.summary.platform_fees)

    @property
    def sla_credits(self) -> Money:
        return self._money(self.summary.sla_credits)

    @property
    def refunded(self) -> Money:
        return self._money(self.summary.refunded)

    @property
    def availability_percent(self) -> Decimal | None:
        availability = self.summary.availability
        return None if availability is None else (availability * 100).quantize(Decimal("0.01"))


def _live(leases_: list[Lease], organization: Organization | None) -> list[LiveLease]:
    summaries = queries.lease_summaries(leases_, now=timezone.now())
    return [
        LiveLease(
            lease,
            summaries[lease.pk],
            ""
            if organization is None
            else "buyer"
            if lease.buyer_id == organization.pk
            else "provider",
        )
        for lease in leases_
    ]


def _scope(request: HtmxHttpRequest) -> Organization | None:
    """The organization whose side of each lease the user sees; None for a regulator."""
    reader = reader_of(request)
    return reader.organization if isinstance(reader, Principal) else None


# --------------------------------------------------------------------------- the list


@login_required
@require_GET
def lease_list(request: HtmxHttpRequest) -> HttpResponse:
    """The page, or (htmx, every 5 s) just its table."""
    organization = _scope(request)
    filters = LeaseFilterForm(request.GET)
    status = role = ""
    if filters.is_valid():
        status, role = filters.cleaned_data["status"], filters.cleaned_data["role"]
    found = queries.leases_of(reader_of(request), role=role or None)
    if status:
        found = found.filter(status=status)
    page = page_of(request, found)
    context = {
        "filters": filters,
        "leases": page,
        "rows": _live(list(page), organization),
        "market_wide": organization is None,
        "status": status,
    }
    template = f"{LIST_TEMPLATE}#rows" if request.htmx else LIST_TEMPLATE
    return render(request, template, context)


# --------------------------------------------------------------------------- one lease


def _visible_lease(request: HtmxHttpRequest, lease_id: uuid.UUID) -> Lease:
    lease = queries.lease_with_history(queries.leases_of(reader_of(request)), lease_id)
    if lease is None:
        raise NotFound(_("No such lease."))
    return lease


def _access(request: HtmxHttpRequest, lease: Lease) -> dict[str, str] | None:
    """The buyer's access details once the provider's agent has posted them."""
    try:
        return agent.access_details_for(principal_of(request), lease)
    except DomainError:
        return None


def _detail_context(request: HtmxHttpRequest, lease: Lease, **extra: Any) -> dict[str, Any]:
    organization = _scope(request)
    [live] = _live([lease], organization)
    is_live = lease.status in LIVE_LEASE_STATUSES
    context: dict[str, Any] = {
        "live": live,
        "lease": lease,
        "market_wide": organization is None,
        "settlements": [
            (
                s,
                (Decimal(s.delivered_unit_seconds) / 3600).quantize(Decimal("0.01")),
                Money(s.charge, lease.market.currency),
                None
                if s.availability is None
                else (s.availability * 100).quantize(Decimal("0.01")),
            )
            for s in lease.settlements.all()
        ],
        "events": [(e, EVENT_LABELS.get(e.kind, e.kind), _note(e)) for e in lease.events.all()],
        "close_reason": EVENT_LABELS.get(lease.close_reason, lease.close_reason),
        "access": _access(request, lease) if live.role == "buyer" else None,
        "can_end": is_live and live.role == "buyer",
        "can_reclaim": is_live and live.role == "provider",
    }
    if context["can_reclaim"] and "reclaim_form" not in extra:
        context["reclaim_form"] = ReclaimForm(initial=ReclaimForm.initial_for(timezone.now()))
    return context | extra


@login_required
@require_GET
def lease_detail(request: HtmxHttpRequest, lease_id: uuid.UUID) -> HttpResponse:
    """The page, or (htmx, every 5 s) just its live summary."""
    lease = _visible_lease(request, lease_id)
    template = f"{DETAIL_TEMPLATE}#live" if request.htmx else DETAIL_TEMPLATE
    return render(request, template, _detail_context(request, lease))


@login_required
@require_POST
def lease_end(request: HtmxHttpRequest, lease_id: uuid.UUID) -> HttpResponse:
    """The buyer ends the lease now and pays only for what was delivered."""
    principal = principal_of(request)
    lease = _visible_lease(request, lease_id)
    try:
        if lease.buyer_id != principal.organization.pk:
            raise Forbidden(_("Only the buyer may end a lease early."), code="not_lease_buyer")
        principal.require_can_trade()
        leases_services.end_lease(
            lease=lease, how="cancelled", actor=principal.actor, now=timezone.now()
        )
    except DomainError as error:
        context = _detail_context(request, _visible_lease(request, lease_id), error=error)
        return render(request, DETAIL_TEMPLATE, context, status=400)
    messages.success(
        request, _("Lease ended. You pay for what was delivered; the rest is back in your wallet.")
    )
    return redirect("lease", lease_id=lease.public_id)


@login_required
@require_POST
def lease_reclaim(request: HtmxHttpRequest, lease_id: uuid.UUID) -> HttpResponse:
    """The provider gives notice that it takes the lease's units back."""
    principal = principal_of(request)
    lease = _visible_lease(request, lease_id)
    form = ReclaimForm(request.POST)
    if form.is_valid():
        try:
            if lease.provider_id != principal.organization.pk:
                raise Forbidden(
                    _("Only the provider may reclaim a lease."), code="not_lease_provider"
                )
            principal.require_can_trade()
            leases_services.give_reclaim_notice(
                lease=lease, actor=principal.actor, at=form.cleaned_data["at"], now=timezone.now()
            )
        except DomainError as error:
            attach(form, error)
        else:
            messages.success(request, _("Reclaim notice given."))
            return redirect("lease", lease_id=lease.public_id)
    context = _detail_context(request, _visible_lease(request, lease_id), reclaim_form=form)
    return render(request, DETAIL_TEMPLATE, context, status=form_status(form))


# --------------------------------------------------------------------------- statements


def _statement(organization: Organization, form: StatementForm) -> statements.MonthlyStatement:
    bounds = statements.month_bounds(form.cleaned_data["month"])
    if bounds is None:  # the form's pattern allows only valid months
        raise NotFound(_("No such statement."))
    start, end = bounds
    return statements.monthly_statement(
        organization, start=start, end=end, currency=form.cleaned_data["currency"]
    )


@login_required
@require_GET
def statement(request: HtmxHttpRequest) -> HttpResponse:
    """The acting organization's statement for a month and currency (this month by default)."""
    organization = acting_member(request).organization
    initial = StatementForm.initial_for(timezone.now())
    form = StatementForm({**initial, **request.GET.dict()})  # a bad month keeps the currency
    context: dict[str, Any] = {"form": form, "organization": organization}
    if form.is_valid():
        found = _statement(organization, form)
        currency = found.currency
        context |= {
            "statement": found,
            "sides": [
                (_("As buyer"), "buyer", _money_side(found.buyer, currency)),
                (_("As provider"), "provider", _money_side(found.provider, currency)),
            ],
        }
    # The first visit shows this month; only a choice the user made can be rejected.
    status = form_status(form) if request.GET else 200
    return render(request, STATEMENT_TEMPLATE, context, status=status)


@dataclass(frozen=True)
class MoneySide:
    lines: list[tuple[statements.StatementLine, list[Money]]]
    totals: list[Money]


def _money_side(side: statements.StatementSide, currency: str) -> MoneySide:
    def amounts(row: statements.StatementLine | statements.StatementTotals) -> list[Money]:
        values = (row.charge, row.fee, row.sla_credit, row.refund, row.net)
        return [Money(v, currency) for v in values]

    return MoneySide([(line, amounts(line)) for line in side.lines], amounts(side.totals))


@login_required
@require_GET
def statement_csv(request: HtmxHttpRequest, month: str) -> HttpResponse:
    organization = acting_member(request).organization
    currency = request.GET.get("currency") or StatementForm.initial_for(timezone.now())["currency"]
    form = StatementForm({"month": month, "currency": currency})
    if not form.is_valid():
        raise NotFound(_("No such statement."))
    found = _statement(organization, form)
    response = HttpResponse(statements.statement_csv(found), content_type="text/csv")
    name = f"statement-{found.month}-{found.currency}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
