"""What a provider's agent does to its organization's leases: acknowledge them, post access details
(encrypted at rest, readable only by the buyer), report metering in signed batches, fail them.

Every function takes the acting ``Principal`` (an API key with the ``provider-agent`` scope) and
refuses a lease of another organization as not found. Lifecycle changes go through
``marketplace.services.leases``; metering goes through ``ledger.metering``.

Metering batches. ``(source, id)`` is unique forever, so a replayed batch is counted once. The
exchange namespaces each ``source`` by the reporting organization before storing it: another
organization reusing a source name can neither collide with nor pre-empt this one's events. An
event may be at most 5 minutes ahead of the exchange's clock and no earlier than its lease's open
settlement period (the last settlement, or the lease's start) minus ``METERING_GRACE_SECONDS``; a
late event inside the grace is counted by the next settlement (an adjustment, never an edit). Once
a lease's books are closed (its final settlement), every event for it is too late.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.utils.translation import gettext as _

from ledger import metering
from marketplace.core.access import Principal
from marketplace.core.errors import Conflict, Forbidden, NotFound
from marketplace.core.owners import ledger_owner
from marketplace.leases import services as leases_services
from marketplace.models import ApiKey, Lease, LeaseAccess, LeaseStatus, Scope, Settlement

SIGNATURE_HEADER = "X-Suanli-Signature"
MAX_BATCH = 1000
CLOSED = dt.datetime.max.replace(tzinfo=dt.UTC)  # "not before the end of time": all too late


class Outcome(StrEnum):
    """One per reported event: the metering outcomes, plus a subject this agent may not report."""

    ACCEPTED = metering.Outcome.ACCEPTED.value
    DUPLICATE = metering.Outcome.DUPLICATE.value
    IN_THE_FUTURE = metering.Outcome.IN_THE_FUTURE.value
    TOO_LATE = metering.Outcome.TOO_LATE.value
    UNKNOWN_SUBJECT = "unknown_subject"


@dataclass(frozen=True)
class AgentEvent:
    """A CloudEvent as an agent sent it (``source`` not yet namespaced)."""

    source: str
    id: str
    type: str
    subject: str
    time: dt.datetime
    data: dict[str, Any] = field(default_factory=dict)


def _agent_lease(principal: Principal, lease: Lease) -> None:
    principal.require_scope(Scope.PROVIDER_AGENT)
    if lease.provider_id != principal.organization.pk:
        raise NotFound(_("No such lease."))


# --------------------------------------------------------------------------- lifecycle


def acknowledge(*, principal: Principal, lease: Lease, now: dt.datetime) -> Lease:
    """``scheduled → provisioning``. A retry after it worked returns the lease unchanged (no
    second event); any other state is a Conflict ``lease_state``."""
    _agent_lease(principal, lease)
    with transaction.atomic():
        locked = Lease.objects.select_for_update().get(pk=lease.pk)
        if locked.status == LeaseStatus.PROVISIONING:
            return locked
        return leases_services.acknowledge(lease=locked, actor=principal.actor, now=now)


def mark_ready(
    *, principal: Principal, lease: Lease, access: dict[str, str], now: dt.datetime
) -> Lease:
    """``scheduled|provisioning → active`` with the buyer's access details, stored encrypted, in
    one transaction: a lease is never active without them, nor are they stored for a lease that
    did not become active (Conflict ``lease_state``)."""
    _agent_lease(principal, lease)
    with transaction.atomic():
        ready = leases_services.mark_ready(lease=lease, actor=principal.actor, now=now)
        LeaseAccess.objects.create(
            lease=ready,
            ciphertext=_encrypt(ready, access),
            posted_by=principal.actor,
            posted_at=now,
        )
    return ready


def fail(*, principal: Principal, lease: Lease, reason: str, now: dt.datetime) -> Lease:
    """End a live lease as ``failed`` and settle it finally (``leases.end_lease``): the buyer pays
    for what the heartbeats show was delivered and gets SLA credits for the rest. A lease that has
    already ended is returned unchanged."""
    _agent_lease(principal, lease)
    return leases_services.end_lease(
        lease=lease, how="failed", actor=principal.actor, now=now, reason=reason
    )


# --------------------------------------------------------------------------- access details


@functools.lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
    except ValueError:
        raise ImproperlyConfigured(
            "LEASE_ACCESS_KEY must be one or more comma-separated Fernet keys "
            "(URL-safe base64 of 32 bytes)"
        ) from None


def _encrypt(lease: Lease, access: dict[str, str]) -> str:
    plaintext = json.dumps({"lease": str(lease.public_id), "access": access}, sort_keys=True)
    return _fernet(settings.LEASE_ACCESS_KEY).encrypt(plaintext.encode()).decode()


def _decrypt(lease: Lease, ciphertext: str) -> dict[str, str]:
    try:
        plaintext = json.loads(_fernet(settings.LEASE_ACCESS_KEY).decrypt(ciphertext.encode()))
    except InvalidToken:
        raise RuntimeError(f"access details of lease {lease.public_id} do not decrypt") from None
    if plaintext.get("lease") != str(lease.public_id):
        raise RuntimeError(f"access details of lease {lease.public_id} belong to another lease")
    access: dict[str, str] = plaintext["access"]
    return access


def access_details_for(principal: Principal, lease: Lease) -> dict[str, str]:
    """The access details the provider's agent posted, decrypted, for a member (or a key with the
    ``read`` scope) of the lease's buyer. The provider gets Forbidden ``not_the_buyer``; anyone
    else NotFound; Conflict ``access_not_ready`` until the agent has posted them."""
    if principal.organization.pk != lease.buyer_id:
        if principal.organization.pk == lease.provider_id:
            raise Forbidden(
                _("Only the buyer's members may read a lease's access details."),
                code="not_the_buyer",
            )
        raise NotFound(_("No such lease."))
    principal.require_scope(Scope.READ)
    stored = LeaseAccess.objects.filter(lease=lease).first()
    if stored is None:
        raise Conflict(
            _("The provider has not posted access details for this lease yet."),
            code="access_not_ready",
        )
    return _decrypt(lease, stored.ciphertext)


# --------------------------------------------------------------------------- metering


def signature(body: bytes, *, api_key: ApiKey) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the raw body keyed with the key's stored hash (the SHA-256
    hex of its secret, which the agent computes from the key it holds)."""
    digest = hmac.new(api_key.secret_hash.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(*, principal: Principal, body: bytes, header: str | None) -> None:
    """Forbidden ``bad_signature`` unless ``header`` signs ``body`` under the acting API key."""
    api_key = principal.api_key
    if (
        api_key is None
        or not header
        or not hmac.compare_digest(
            signature(body, api_key=api_key).encode(), header.strip().lower().encode()
        )
    ):
        raise Forbidden(
            _("Sign the request body: %(header)s: sha256=<HMAC-SHA256 hex>.")
            % {"header": SIGNATURE_HEADER},
            code="bad_signature",
            field=SIGNATURE_HEADER,
        )


def namespaced_source(principal: Principal, source: str) -> str:
    return f"{ledger_owner(principal.organization)}/{source}"


def _lease_id(subject: str) -> uuid.UUID | None:
    kind, _sep, value = subject.partition(":")
    if kind != "lease":
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def record_events(
    *, principal: Principal, events: Sequence[AgentEvent], now: dt.datetime
) -> list[Outcome]:
    """Store a batch of the principal's metering events; one outcome per event, in order. Events
    for another organization's lease (or no lease) are ``unknown_subject`` and not stored. The
    batch commits as a whole; replaying it stores nothing new."""
    principal.require_scope(Scope.PROVIDER_AGENT)
    ids = {lease_id for e in events if (lease_id := _lease_id(e.subject)) is not None}
    found = (
        Lease.objects.filter(provider=principal.organization, public_id__in=ids)
        .annotate(
            last_settled=Max("settlements__at"),
            settled_finally=Exists(Settlement.objects.filter(lease=OuterRef("pk"), final=True)),
        )
        .only("public_id", "starts_at")
    )
    grace = dt.timedelta(seconds=settings.METERING_GRACE_SECONDS)
    not_before = {
        leases_services.subject(lease): CLOSED
        if lease.settled_finally
        else (lease.last_settled or lease.starts_at) - grace
        for lease in found
    }
    outcomes: list[Outcome | None] = [None] * len(events)
    groups: dict[dt.datetime, list[int]] = defaultdict(list)
    for index, event in enumerate(events):
        if event.subject in not_before:
            groups[not_before[event.subject]].append(index)
        else:
            outcomes[index] = Outcome.UNKNOWN_SUBJECT
    with transaction.atomic():
        # metering.record takes one limit per call: one call per distinct limit, in a fixed order.
        for limit in sorted(groups):
            indexes = groups[limit]
            recorded = metering.record(
                [
                    metering.Event(
                        source=namespaced_source(principal, events[i].source),
                        event_id=events[i].id,
                        type=events[i].type,
                        subject=events[i].subject,
                        time=events[i].time,
                        data=events[i].data,
                    )
                    for i in indexes
                ],
                now=now,
                not_before=limit,
            )
            for i, outcome in zip(indexes, recorded, strict=True):
                outcomes[i] = Outcome(outcome.value)
    return [outcome for outcome in outcomes if outcome is not None]
