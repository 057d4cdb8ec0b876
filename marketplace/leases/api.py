"""The lease API: your leases live (as buyer or provider), a buyer's early end, a provider's
reclaim notice, and monthly statements (JSON and CSV)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.api.base import (
    ERROR_RESPONSES,
    ORGANIZATION_PARAMETER,
    READ_ERRORS,
    OrganizationScoped,
)
from marketplace.core.access import Principal
from marketplace.core.errors import Forbidden, InvalidInput, NotFound
from marketplace.leases import agent, queries, serializers, statements
from marketplace.leases import services as leases_services
from marketplace.models import Lease, Market, Organization


def _lease(acting: Principal, lease_id: str) -> Lease:
    """One of the acting organization's leases (either side) with its history; another
    organization's is simply not found."""
    try:
        public_id = uuid.UUID(str(lease_id))
    except ValueError:
        raise NotFound(_("No such lease.")) from None
    found = queries.lease_with_history(queries.leases_of(acting), public_id)
    if found is None:
        raise NotFound(_("No such lease."))
    return found


def _detail(acting: Principal, lease: Lease, *, now: dt.datetime) -> dict[str, Any]:
    fresh = _lease(acting, str(lease.public_id))  # the settlements and events it has now
    context = {
        "organization": acting.organization,
        "summary": queries.lease_summary(fresh, now=now),
    }
    return dict(serializers.LeaseDetailOut(fresh, context=context).data)


class LeaseList(OrganizationScoped):
    serializer_class = serializers.LeaseTermsOut

    @extend_schema(
        operation_id="leases_list",
        parameters=[ORGANIZATION_PARAMETER, serializers.LeaseListIn],
        responses={200: serializers.LeaseTermsOut(many=True), **READ_ERRORS},
        description="The leases your organization bought or provided, newest first.",
    )
    def get(self, request: Request) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        data = serializers.LeaseListIn(data=request.query_params)
        data.is_valid(raise_exception=True)
        found: QuerySet[Lease] = queries.leases_of(acting, role=data.validated_data.get("role"))
        if status_ := data.validated_data.get("status"):
            found = found.filter(status=status_)
        page = self.paginate_queryset(found)
        context = {"organization": acting.organization}
        return self.get_paginated_response(
            serializers.LeaseTermsOut(page, many=True, context=context).data
        )


class LeaseDetail(OrganizationScoped):
    @extend_schema(
        operation_id="leases_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.LeaseDetailOut, **READ_ERRORS},
        description="One of your leases: its terms, a live summary (availability and usage so "
        "far, what was charged, an estimate of what was delivered since the last settlement, "
        "when the next settlement is due), its settlements and its events.",
    )
    def get(self, request: Request, lease_id: str) -> Response:
        acting = self.acting(request)
        acting.require_scope("read")
        return Response(_detail(acting, _lease(acting, lease_id), now=timezone.now()))


class LeaseAccess(OrganizationScoped):
    @extend_schema(
        operation_id="leases_access_retrieve",
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.LeaseAccessOut, **READ_ERRORS},
        description="The access details the provider's agent posted for this lease, decrypted. "
        "Only the buyer's members and `read` keys; 409 `access_not_ready` until posted.",
    )
    def get(self, request: Request, lease_id: str) -> Response:
        acting = self.acting(request)
        details = agent.access_details_for(acting, _lease(acting, lease_id))
        return Response(serializers.LeaseAccessOut({"access": details}).data)


class LeaseEnd(OrganizationScoped):
    @extend_schema(
        operation_id="leases_end",
        request=None,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.LeaseDetailOut, **ERROR_RESPONSES},
        description="End one of the leases you bought now (buyers). You pay for what was "
        "delivered until now and the rest of the lease's money comes back to your wallet in the "
        "final settlement. Ending a lease that has already ended changes nothing. 403 "
        "`not_lease_buyer` for a lease you provided.",
    )
    def post(self, request: Request, lease_id: str) -> Response:
        acting = self.acting(request)
        acting.require_can_trade()
        lease = _lease(acting, lease_id)
        if lease.buyer_id != acting.organization.pk:
            raise Forbidden(_("Only the buyer may end a lease early."), code="not_lease_buyer")
        now = timezone.now()
        leases_services.end_lease(lease=lease, how="cancelled", actor=acting.actor, now=now)
        return Response(_detail(acting, lease, now=now))


class LeaseReclaim(OrganizationScoped):
    @extend_schema(
        operation_id="leases_reclaim",
        request=serializers.ReclaimIn,
        parameters=[ORGANIZATION_PARAMETER],
        responses={200: serializers.LeaseDetailOut, **ERROR_RESPONSES},
        description="Give notice that you take a lease's units back at `at` (providers). The "
        "lease ends then; the buyer is refunded the rest and credited a penalty share of the "
        "undelivered value. 403 `reclaim_notice_too_short` with less notice than the exchange "
        "requires; 403 `not_lease_provider` for a lease you bought; 409 `lease_state` for a lease "
        "that has ended.",
    )
    def post(self, request: Request, lease_id: str) -> Response:
        acting = self.acting(request)
        acting.require_can_trade()
        lease = _lease(acting, lease_id)
        if lease.provider_id != acting.organization.pk:
            raise Forbidden(_("Only the provider may reclaim a lease."), code="not_lease_provider")
        data = serializers.ReclaimIn(data=request.data)
        data.is_valid(raise_exception=True)
        now = timezone.now()
        leases_services.give_reclaim_notice(
            lease=lease, actor=acting.actor, at=data.validated_data["at"], now=now
        )
        return Response(_detail(acting, lease, now=now))


# --------------------------------------------------------------------------- statements

MONTH_PARAMETER = OpenApiParameter(
    "month", str, OpenApiParameter.PATH, description="yyyy-mm (UTC)", pattern=r"^\d{4}-\d{2}$"
)


def statement_for(
    organization: Organization, month: str, currency: str | None
) -> statements.MonthlyStatement:
    """The organization's statement for ``month`` (yyyy-mm) in ``currency`` (default: the first
    open market's); 400 for a malformed month or a currency no market trades in."""
    bounds = statements.month_bounds(month)
    if bounds is None:
        raise InvalidInput(_("Give the month as yyyy-mm."), code="invalid_month", field="month")
    markets = Market.objects.order_by("-active", "pk")
    if currency:
        currency = currency.upper()
        if not markets.filter(currency=currency).exists():
            raise InvalidInput(
                _("No market trades in %(currency)s.") % {"currency": currency},
                code="unknown_currency",
                field="currency",
            )
    else:
        first = markets.first()
        if first is None:
            raise NotFound(_("No market is open."))
        currency = first.currency
    start, end = bounds
    return statements.monthly_statement(organization, start=start, end=end, currency=currency)


def _statement(
    view: OrganizationScoped, request: Request, month: str
) -> statements.MonthlyStatement:
    acting = view.acting(request)
    acting.require_scope("read")
    data = serializers.StatementIn(data=request.query_params)
    data.is_valid(raise_exception=True)
    return statement_for(acting.organization, month, data.validated_data.get("currency"))


def csv_response(statement: statements.MonthlyStatement) -> HttpResponse:
    response = HttpResponse(statements.statement_csv(statement), content_type="text/csv")
    name = f"statement-{statement.month}-{statement.currency}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


class StatementView(OrganizationScoped):
    @extend_schema(
        operation_id="statements_retrieve",
        parameters=[ORGANIZATION_PARAMETER, MONTH_PARAMETER, serializers.StatementIn],
        responses={200: serializers.StatementOut, **READ_ERRORS},
        description="Your organization's monthly statement in one currency: every settlement "
        "made in the month (UTC) of the leases you bought (charges, buyer fees, SLA credits "
        "received, refunds) and provided (charges, platform fees, SLA credits paid, net), with "
        "totals, in minor units. The same as CSV: `GET /api/v1/statements/{month}.csv` (one row "
        "per settlement and side, then a `total` row per side).",
    )
    def get(self, request: Request, month: str) -> Response:
        return Response(serializers.StatementOut(_statement(self, request, month)).data)


class StatementCsv(OrganizationScoped):
    # The CSV form of ``statements_retrieve`` (described there): left out of the schema, whose
    # operations all answer JSON.
    @extend_schema(exclude=True)
    def get(self, request: Request, month: str) -> HttpResponse:
        return csv_response(_statement(self, request, month))
