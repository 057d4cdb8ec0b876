"""The provider agent API (an API key with the ``provider-agent`` scope): the organization's leases
to provision, acknowledge, ready with access details, fail, and signed metering batches."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from marketplace.api.base import ERROR_RESPONSES, READ_ERRORS, OrganizationScoped
from marketplace.api.pagination import EnvelopeCursorPagination
from marketplace.core import access
from marketplace.core.access import Principal
from marketplace.leases import agent
from marketplace.leases import agent_serializers as leases_agent_serializers
from marketplace.models import LIVE_LEASE_STATUSES, Lease, Scope

SIGNATURE_PARAMETER = OpenApiParameter(
    agent.SIGNATURE_HEADER,
    str,
    OpenApiParameter.HEADER,
    required=True,
    description="`sha256=<hex>`: HMAC-SHA256 of the raw request body, keyed with the SHA-256 hex "
    "digest of your API key's secret (the part after `sx_<prefix>_`).",
)
WRITE_ERRORS = {code: ERROR_RESPONSES[code] for code in (400, 401, 403, 404, 409)}
REASONS = {
    agent.Outcome.DUPLICATE: gettext_lazy("Already received: each (source, id) is counted once."),
    agent.Outcome.IN_THE_FUTURE: gettext_lazy("More than 5 minutes ahead of the exchange's clock."),
    agent.Outcome.TOO_LATE: gettext_lazy(
        "Before the lease's open settlement period less the grace period, or the lease is "
        "finally settled."
    ),
    agent.Outcome.UNKNOWN_SUBJECT: gettext_lazy("Not a lease of your organization."),
}


def _leases(acting: Principal) -> QuerySet[Lease]:
    return access.leases_visible_to(acting, side="provider").select_related(
        "market", "pool__device_model"
    )


def _lease(acting: Principal, lease_id: str) -> Lease:
    """One of the organization's leases; another organization's is simply not found."""
    return access.one_of(_leases(acting), lease_id, missing=_("No such lease."))


class LeasePagination(EnvelopeCursorPagination):
    ordering = "pk"  # oldest first: the order the matcher created them


class AgentView(OrganizationScoped):
    # Base of the agent operations: the acting key must have the provider-agent scope.

    def agent(self, request: Request) -> Principal:
        acting = self.acting(request)
        acting.require_scope(Scope.PROVIDER_AGENT)
        return acting

    def lease(self, request: Request, lease_id: str) -> tuple[Principal, Lease]:
        acting = self.agent(request)
        return acting, _lease(acting, lease_id)


class AgentLeaseList(AgentView):
    serializer_class = leases_agent_serializers.AgentLeaseOut
    pagination_class = LeasePagination

    @extend_schema(
        operation_id="agent_leases_list",
        parameters=[leases_agent_serializers.AgentLeaseListIn],
        responses={200: leases_agent_serializers.AgentLeaseOut(many=True), **READ_ERRORS},
        description="Your organization's leases, oldest first: by default the live ones "
        "(scheduled, provisioning, active); `?status=scheduled` lists those to provision.",
    )
    def get(self, request: Request) -> Response:
        acting = self.agent(request)
        query = leases_agent_serializers.AgentLeaseListIn(data=request.query_params)
        query.is_valid(raise_exception=True)
        wanted = query.validated_data.get("status")
        leases = _leases(acting).filter(
            status__in=[wanted] if wanted else list(LIVE_LEASE_STATUSES)
        )
        page = self.paginate_queryset(leases)
        return self.get_paginated_response(
            leases_agent_serializers.AgentLeaseOut(page, many=True).data
        )


class AgentLeaseAcknowledge(AgentView):
    @extend_schema(
        operation_id="agent_leases_acknowledge",
        request=None,
        responses={200: leases_agent_serializers.AgentLeaseOut, **WRITE_ERRORS},
        description="You have the lease and are provisioning it: `scheduled → provisioning`. "
        "Repeating it is harmless; from any other state, 409 `lease_state`.",
    )
    def post(self, request: Request, lease_id: str) -> Response:
        acting, lease = self.lease(request, lease_id)
        lease = agent.acknowledge(principal=acting, lease=lease, now=timezone.now())
        return Response(
            leases_agent_serializers.AgentLeaseOut(_leases(acting).get(pk=lease.pk)).data
        )


class AgentLeaseReady(AgentView):
    @extend_schema(
        operation_id="agent_leases_ready",
        request=leases_agent_serializers.AgentReadyIn,
        responses={200: leases_agent_serializers.AgentLeaseOut, **WRITE_ERRORS},
        description="The machines are up: `provisioning → active`, with the details the buyer "
        "needs to reach them. They are stored encrypted and only the buyer's members can read "
        "them. 409 `lease_state` unless the lease is scheduled or provisioning.",
    )
    def post(self, request: Request, lease_id: str) -> Response:
        acting, lease = self.lease(request, lease_id)
        data = leases_agent_serializers.AgentReadyIn(data=request.data)
        data.is_valid(raise_exception=True)
        lease = agent.mark_ready(
            principal=acting,
            lease=lease,
            access=data.validated_data["access"],
            now=timezone.now(),
        )
        return Response(
            leases_agent_serializers.AgentLeaseOut(_leases(acting).get(pk=lease.pk)).data
        )


class AgentLeaseFail(AgentView):
    @extend_schema(
        operation_id="agent_leases_fail",
        request=leases_agent_serializers.AgentFailIn,
        responses={200: leases_agent_serializers.AgentLeaseOut, **WRITE_ERRORS},
        description="The lease cannot be delivered any longer: it ends now as `failed` and is "
        "settled finally (the buyer pays for the delivered time the heartbeats show and is "
        "credited for missed availability). A lease that already ended is returned as it is.",
    )
    def post(self, request: Request, lease_id: str) -> Response:
        acting, lease = self.lease(request, lease_id)
        data = leases_agent_serializers.AgentFailIn(data=request.data)
        data.is_valid(raise_exception=True)
        lease = agent.fail(
            principal=acting,
            lease=lease,
            reason=data.validated_data["reason"],
            now=timezone.now(),
        )
        return Response(
            leases_agent_serializers.AgentLeaseOut(_leases(acting).get(pk=lease.pk)).data
        )


class AgentEvents(AgentView):
    @extend_schema(
        operation_id="agent_events_create",
        request=leases_agent_serializers.AgentEventBatchIn,
        parameters=[SIGNATURE_PARAMETER],
        responses={200: leases_agent_serializers.AgentEventBatchOut, **READ_ERRORS},
        description='Report heartbeats (`com.suanli.heartbeat`, data `{"units_up": n}`: n units '
        'were up during that minute; with `"minutes": k`, 1 to 60, during each of the k minutes '
        "starting with that one, a minute covered twice counting once at the most units "
        "reported) and usage (`com.suanli.usage`) as a batch of up to 1,000 "
        "CloudEvents, signed (403 `bad_signature` otherwise, and nothing is recorded). Each "
        "event gets an outcome: `accepted`; `duplicate` ((source, id) seen before: counted "
        "once); `in_the_future` (more than 5 minutes ahead); `too_late` (before the lease's "
        "open settlement period less the grace, `METERING_GRACE_SECONDS`); `unknown_subject` "
        "(not a lease of yours). A late event inside the grace is counted by the next "
        "settlement. Malformed events reject the whole batch (400, `field` names the event).",
    )
    def post(self, request: Request) -> Response:
        acting = self.agent(request)
        agent.verify_signature(
            principal=acting, body=request.body, header=request.headers.get(agent.SIGNATURE_HEADER)
        )
        data = leases_agent_serializers.AgentEventBatchIn(data=request.data)
        data.is_valid(raise_exception=True)
        events = [
            agent.AgentEvent(**{k: v for k, v in values.items() if k != "specversion"})
            for values in data.validated_data["events"]
        ]
        outcomes = agent.record_events(principal=acting, events=events, now=timezone.now())
        body: dict[str, Any] = {
            "accepted": outcomes.count(agent.Outcome.ACCEPTED),
            "outcomes": [
                {
                    "id": event.id,
                    "source": event.source,
                    "outcome": outcome.value,
                    "reason": REASONS.get(outcome),
                }
                for event, outcome in zip(events, outcomes, strict=True)
            ],
        }
        return Response(leases_agent_serializers.AgentEventBatchOut(body).data)
