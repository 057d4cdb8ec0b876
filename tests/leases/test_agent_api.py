"""The provider agent API: a provider-agent key provisions its organization's leases, posts access
details only the buyer can read, and reports signed metering batches counted exactly once; the
reference agent does all of it in one cycle."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
import time_machine
from cryptography.fernet import Fernet
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from ledger.models import Transfer, UsageEvent
from marketplace.client.agent import urllib_transport
from marketplace.core.access import Principal, principal_for_key
from marketplace.core.env import derived_key
from marketplace.core.errors import Conflict, Forbidden, NotFound
from marketplace.leases import agent
from marketplace.leases import services as leases_services
from marketplace.models import (
    ApiKey,
    Lease,
    LeaseAccess,
    LeaseEvent,
    LeaseStatus,
    Organization,
    Settlement,
    User,
)
from tests.factories import OrganizationFactory
from tests.fixtures.http import bearer, client_transport, error_of
from tests.fixtures.market import HOUR, NOW, acting
from tests.fixtures.processes import PRODUCTION_ENV, manage

pytestmark = pytest.mark.django_db
MINUTE = dt.timedelta(minutes=1)
KeyMaker = Callable[..., tuple[ApiKey, str]]
ACCESS = {"ssh": "ssh -p 2222 lease@gpu-7.qingyang.example", "password": "hunter2-correct-horse"}


@pytest.fixture
def agent_key(provider_org: Organization, api_key_for: KeyMaker) -> tuple[ApiKey, str]:
    return api_key_for(provider_org, "provider-agent")


@pytest.fixture
def agent_api(agent_key: tuple[ApiKey, str]) -> APIClient:
    return bearer(APIClient(), agent_key[1])


@pytest.fixture
def other_provider(db: None) -> Organization:
    return OrganizationFactory.create(
        owner__email="owner@other-provider.example", legal_name="North Compute", provider=True
    )


def sign(secret: str, body: bytes) -> str:
    """The documented scheme, computed from the raw key alone."""
    signing_key = hashlib.sha256(secret.split("_", 2)[2].encode()).hexdigest().encode()
    return "sha256=" + hmac.new(signing_key, body, hashlib.sha256).hexdigest()


def post_events(
    client: APIClient, secret: str, events: list[dict[str, Any]], *, signature: str | None = None
) -> Any:
    body = json.dumps({"events": events}).encode()
    headers = {} if signature == "" else {"X-Suanli-Signature": signature or sign(secret, body)}
    return client.post(
        "/api/v1/agent/events", data=body, content_type="application/json", headers=headers
    )


def heartbeat(
    lease: Lease, at: dt.datetime, *, units: int = 4, n: int | None = None
) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"hb-{n if n is not None else at.isoformat()}",
        "source": "agent/qingyang-1",
        "type": "com.suanli.heartbeat",
        "subject": leases_services.subject(lease),
        "time": at.isoformat(),
        "data": {"units_up": units},
    }


def half_hour(lease: Lease) -> list[dict[str, Any]]:
    """Heartbeats for the lease's first 30 minutes (4 units): 2 unit-hours, 16,000 fen."""
    return [heartbeat(lease, NOW + m * MINUTE + dt.timedelta(seconds=7), n=m) for m in range(30)]


def state(lease: Lease) -> tuple[Any, ...]:
    fresh = Lease.objects.get(pk=lease.pk)
    return (
        fresh.status,
        fresh.closed_at,
        LeaseEvent.objects.count(),
        LeaseAccess.objects.count(),
        UsageEvent.objects.count(),
        Settlement.objects.count(),
        Transfer.objects.count(),
    )


def make_active(client: APIClient, lease: Lease) -> None:
    base = f"/api/v1/agent/leases/{lease.public_id}"
    assert client.post(f"{base}/acknowledge").status_code == 200
    assert client.post(f"{base}/ready", {"access": ACCESS}, format="json").status_code == 200


# --------------------------------------------------------------------------- who may


def test_agent_operations_need_the_provider_agent_scope(
    lease: Lease, provider_org: Organization, api_key_for: KeyMaker
) -> None:
    _key, secret = api_key_for(provider_org, "read", "trade")
    client = bearer(APIClient(), secret)
    before = state(lease)

    listed = client.get("/api/v1/agent/leases")
    acknowledged = client.post(f"/api/v1/agent/leases/{lease.public_id}/acknowledge")
    reported = post_events(client, secret, half_hour(lease))

    for response in (listed, acknowledged, reported):
        assert response.status_code == 403
        assert error_of(response)["code"] == "insufficient_scope"
    assert state(lease) == before


def test_the_agent_lists_its_organizations_leases_to_provision(
    lease: Lease, agent_api: APIClient
) -> None:
    scheduled = agent_api.get("/api/v1/agent/leases?status=scheduled")
    active = agent_api.get("/api/v1/agent/leases?status=active")
    wrong = agent_api.get("/api/v1/agent/leases?status=sleeping")

    assert scheduled.status_code == 200
    body = scheduled.json()
    assert [item["id"] for item in body["data"]] == [str(lease.public_id)]
    item = body["data"][0]
    assert (item["subject"], item["status"], item["units"], item["pool_name"]) == (
        f"lease:{lease.public_id}",
        "scheduled",
        4,
        "h100-x8",
    )
    assert (item["device_model"], item["devices_per_unit"], item["price"]) == (
        "nvidia-h100-sxm",
        8,
        "80.000000",
    )
    assert active.json() == {"data": [], "next": None, "previous": None}
    assert (wrong.status_code, error_of(wrong)["field"]) == (400, "status")


def test_another_organizations_lease_is_not_found_and_unchanged(
    lease: Lease, other_provider: Organization, api_key_for: KeyMaker
) -> None:
    _key, secret = api_key_for(other_provider, "provider-agent")
    client = bearer(APIClient(), secret)
    before = state(lease)
    base = f"/api/v1/agent/leases/{lease.public_id}"

    listed = client.get("/api/v1/agent/leases?status=scheduled")
    responses = [
        client.post(f"{base}/acknowledge"),
        client.post(f"{base}/ready", {"access": ACCESS}, format="json"),
        client.post(f"{base}/fail", {"reason": "hardware_fault"}, format="json"),
        client.post("/api/v1/agent/leases/not-a-uuid/acknowledge"),
    ]
    with time_machine.travel(NOW + HOUR, tick=False):
        reported = post_events(client, secret, half_hour(lease))

    assert listed.json()["data"] == []
    assert [(r.status_code, error_of(r)["code"]) for r in responses] == [(404, "not_found")] * 4
    assert reported.status_code == 200
    assert reported.json()["accepted"] == 0
    assert {o["outcome"] for o in reported.json()["outcomes"]} == {"unknown_subject"}
    assert state(lease) == before


# --------------------------------------------------------------------------- lifecycle


def test_acknowledge_then_ready_makes_the_lease_active(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    base = f"/api/v1/agent/leases/{lease.public_id}"
    actor = f"key:{agent_key[0].prefix}"

    acknowledged = agent_api.post(f"{base}/acknowledge")
    again = agent_api.post(f"{base}/acknowledge")
    ready = agent_api.post(f"{base}/ready", {"access": ACCESS}, format="json")

    assert (acknowledged.status_code, acknowledged.json()["status"]) == (200, "provisioning")
    assert (again.status_code, again.json()["status"]) == (200, "provisioning")
    assert (ready.status_code, ready.json()["status"]) == (200, "active")
    assert list(lease.events.order_by("pk").values_list("kind", "status", "actor")) == [
        ("provisioning", "provisioning", actor),
        ("active", "active", actor),
    ]
    stored = LeaseAccess.objects.get(lease=lease)
    assert stored.posted_by == actor


def test_ready_twice_is_a_conflict_and_keeps_the_first_details(
    lease: Lease, agent_api: APIClient
) -> None:
    make_active(agent_api, lease)
    before = (state(lease), LeaseAccess.objects.get().ciphertext)

    again = agent_api.post(
        f"/api/v1/agent/leases/{lease.public_id}/ready",
        {"access": {"ssh": "ssh other@host"}},
        format="json",
    )

    assert (again.status_code, error_of(again)["code"]) == (409, "lease_state")
    assert (state(lease), LeaseAccess.objects.get().ciphertext) == before


def test_ready_without_access_details_is_400_and_changes_nothing(
    lease: Lease, agent_api: APIClient
) -> None:
    before = state(lease)

    empty = agent_api.post(
        f"/api/v1/agent/leases/{lease.public_id}/ready", {"access": {}}, format="json"
    )

    assert (empty.status_code, error_of(empty)["field"]) == (400, "access")
    assert state(lease) == before


def test_access_details_are_encrypted_at_rest_and_readable_by_the_buyer_only(
    lease: Lease,
    agent_api: APIClient,
    agent_key: tuple[ApiKey, str],
    buyer: User,
    buyer_org: Organization,
    seller: Principal,
    other_provider: Organization,
    api_key_for: KeyMaker,
) -> None:
    with pytest.raises(Conflict) as not_yet:
        agent.access_details_for(acting(buyer), lease)
    assert not_yet.value.code == "access_not_ready"

    make_active(agent_api, lease)

    with connection.cursor() as cursor:
        cursor.execute("SELECT ciphertext FROM marketplace_leaseaccess")
        ((raw,),) = cursor.fetchall()
    assert ACCESS["password"] not in raw
    assert "ssh" not in raw
    assert agent.access_details_for(acting(buyer), lease) == ACCESS
    read_key, _secret = api_key_for(buyer_org, "read")
    assert agent.access_details_for(principal_for_key(read_key), lease) == ACCESS
    with pytest.raises(Forbidden) as provider:
        agent.access_details_for(seller, lease)
    assert provider.value.code == "not_the_buyer"
    with pytest.raises(Forbidden) as agent_itself:
        agent.access_details_for(principal_for_key(agent_key[0]), lease)
    assert agent_itself.value.code == "not_the_buyer"
    stranger_key, _secret = api_key_for(other_provider, "read")
    with pytest.raises(NotFound):
        agent.access_details_for(principal_for_key(stranger_key), lease)
    trade_only, _secret = api_key_for(buyer_org, "trade")
    with pytest.raises(Forbidden) as scope:
        agent.access_details_for(principal_for_key(trade_only), lease)
    assert scope.value.code == "insufficient_scope"


def test_a_token_copied_to_another_lease_does_not_decrypt(
    lease: Lease, agent_api: APIClient, buyer: User
) -> None:
    make_active(agent_api, lease)
    other = Lease(public_id="00000000-0000-4000-8000-000000000001", buyer=lease.buyer)

    with pytest.raises(RuntimeError, match="another lease"):
        agent._decrypt(other, LeaseAccess.objects.get().ciphertext)


def test_fail_ends_the_lease_and_settles_what_was_delivered(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    make_active(agent_api, lease)
    with time_machine.travel(NOW + HOUR, tick=False):
        post_events(agent_api, agent_key[1], half_hour(lease))
        failed = agent_api.post(
            f"/api/v1/agent/leases/{lease.public_id}/fail",
            {"reason": "hardware_fault"},
            format="json",
        )
        late = post_events(agent_api, agent_key[1], [heartbeat(lease, NOW + 40 * MINUTE)])

    assert failed.status_code == 200
    assert (failed.json()["status"], failed.json()["close_reason"]) == ("failed", "hardware_fault")
    final = Settlement.objects.get(lease=lease, final=True)
    # 30 of 60 minutes × 4 units: 2 unit-hours at 80.00 = 16,000; availability 0.5 → 10% credit.
    assert (final.charge, str(final.availability), final.sla_credit) == (16_000, "0.500000", 1_600)
    assert late.json()["outcomes"][0]["outcome"] == "too_late"  # the books are closed


def test_fail_needs_a_short_reason(lease: Lease, agent_api: APIClient) -> None:
    before = state(lease)

    long = agent_api.post(
        f"/api/v1/agent/leases/{lease.public_id}/fail", {"reason": "x" * 33}, format="json"
    )

    assert (long.status_code, error_of(long)["code"], error_of(long)["field"]) == (
        400,
        "max_length",
        "reason",
    )
    assert state(lease) == before


# --------------------------------------------------------------------------- metering


def test_a_signed_batch_is_accepted_and_counted_once_when_replayed(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str], provider_org: Organization
) -> None:
    events = [
        *half_hour(lease),
        {
            **heartbeat(lease, NOW + 5 * MINUTE, n=999),
            "id": "usage-1",
            "type": "com.suanli.usage",
            "data": {"gpu_seconds": 7200},
        },
    ]
    with time_machine.travel(NOW + HOUR, tick=False):
        first = post_events(agent_api, agent_key[1], events)
        replay = post_events(agent_api, agent_key[1], events)

    assert first.status_code == 200
    assert first.json()["accepted"] == 31
    assert first.json()["outcomes"][0] == {
        "id": "hb-0",
        "source": "agent/qingyang-1",
        "outcome": "accepted",
        "reason": None,
    }
    assert replay.status_code == 200
    assert replay.json()["accepted"] == 0
    assert {o["outcome"] for o in replay.json()["outcomes"]} == {"duplicate"}
    assert UsageEvent.objects.count() == 31
    assert set(UsageEvent.objects.values_list("source", flat=True)) == {
        f"org:{provider_org.public_id}/agent/qingyang-1"
    }

    settled = leases_services.settle(lease=lease, now=NOW + HOUR)

    assert settled is not None
    assert (settled.delivered_unit_seconds, settled.charge) == (30 * 60 * 4, 16_000)
    assert leases_services.settle(lease=lease, now=NOW + HOUR) is None


@pytest.mark.parametrize("case", ["missing", "wrong key", "tampered body", "malformed"])
def test_a_bad_signature_is_403_and_records_nothing(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str], case: str
) -> None:
    events = half_hour(lease)
    body = json.dumps({"events": events}).encode()
    signature = {
        "missing": "",
        "wrong key": sign("sx_000000000000_not-the-secret-at-all-000", body),
        "tampered body": sign(agent_key[1], body.replace(b'"units_up": 4', b'"units_up": 9')),
        "malformed": sign(agent_key[1], body)[len("sha256=") :],
    }[case]
    before = state(lease)

    with time_machine.travel(NOW + HOUR, tick=False):
        response = post_events(agent_api, agent_key[1], events, signature=signature)

    assert response.status_code == 403
    assert (error_of(response)["code"], error_of(response)["field"]) == (
        "bad_signature",
        "X-Suanli-Signature",
    )
    assert state(lease) == before


def test_events_too_far_ahead_or_too_late_are_refused_with_a_reason(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    now = NOW + HOUR
    grace = dt.timedelta(seconds=settings.METERING_GRACE_SECONDS)
    events = [
        heartbeat(lease, now + 6 * MINUTE, n=1),  # more than 5 minutes ahead
        heartbeat(lease, now + 4 * MINUTE, n=2),
        heartbeat(lease, lease.starts_at - grace - MINUTE, n=3),  # before the period less grace
        heartbeat(lease, lease.starts_at - grace + MINUTE, n=4),
    ]

    with time_machine.travel(now, tick=False):
        response = post_events(agent_api, agent_key[1], events)

    outcomes = response.json()["outcomes"]
    assert [o["outcome"] for o in outcomes] == ["in_the_future", "accepted", "too_late", "accepted"]
    assert outcomes[0]["reason"] == "More than 5 minutes ahead of the exchange's clock."
    assert outcomes[2]["reason"].startswith("Before the lease's open settlement period")
    assert set(UsageEvent.objects.values_list("event_id", flat=True)) == {"hb-2", "hb-4"}


def test_a_late_event_inside_grace_is_an_adjustment_in_the_next_settlement(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    with time_machine.travel(NOW + HOUR, tick=False):
        post_events(agent_api, agent_key[1], half_hour(lease)[:15])  # minutes 0–14
    first = leases_services.settle(lease=lease, now=NOW + HOUR)
    # The open period starts at that settlement; grace reaches back one hour, to NOW.
    late = [heartbeat(lease, NOW + m * MINUTE + dt.timedelta(seconds=9), n=m) for m in (15, 16)]
    too_late = heartbeat(lease, NOW - MINUTE, n=-1)

    with time_machine.travel(NOW + HOUR + MINUTE, tick=False):
        response = post_events(agent_api, agent_key[1], [*late, too_late])
    second = leases_services.settle(lease=lease, now=NOW + HOUR + MINUTE)

    assert [o["outcome"] for o in response.json()["outcomes"]] == [
        "accepted",
        "accepted",
        "too_late",
    ]
    assert first is not None and second is not None
    assert (first.charge, second.charge) == (8_000, 1_067)  # 1 unit-hour; then 8 unit-minutes
    assert Settlement.objects.filter(lease=lease).count() == 2  # the first one is never edited


def test_events_for_unknown_subjects_are_refused_per_event(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    events = [
        heartbeat(lease, NOW + MINUTE, n=1),
        {**heartbeat(lease, NOW + MINUTE, n=2), "subject": "lease:not-a-uuid"},
        {**heartbeat(lease, NOW + MINUTE, n=3), "subject": f"lease:{NOW.year}-0000"},
        {
            **heartbeat(lease, NOW + MINUTE, n=4),
            "subject": "lease:8e7d6c5b-4a39-4281-9f0e-1d2c3b4a5968",
        },
        {**heartbeat(lease, NOW + MINUTE, n=5), "subject": f"pool:{lease.public_id}"},
    ]

    with time_machine.travel(NOW + HOUR, tick=False):
        response = post_events(agent_api, agent_key[1], events)

    assert [o["outcome"] for o in response.json()["outcomes"]] == ["accepted"] + [
        "unknown_subject"
    ] * 4
    assert response.json()["outcomes"][1]["reason"] == "Not a lease of your organization."
    assert list(UsageEvent.objects.values_list("event_id", flat=True)) == ["hb-1"]


def test_a_malformed_batch_is_400_and_records_nothing(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    no_units = {**heartbeat(lease, NOW, n=2), "data": {"units_up": "four"}}
    too_many = [heartbeat(lease, NOW + dt.timedelta(seconds=s), n=s) for s in range(1001)]
    naive = {**heartbeat(lease, NOW, n=3), "specversion": "0.3"}

    with time_machine.travel(NOW + HOUR, tick=False):
        bad_units = post_events(agent_api, agent_key[1], [heartbeat(lease, NOW, n=1), no_units])
        oversized = post_events(agent_api, agent_key[1], too_many)
        old_spec = post_events(agent_api, agent_key[1], [naive])
        empty = post_events(agent_api, agent_key[1], [])

    assert (bad_units.status_code, error_of(bad_units)["code"]) == (400, "invalid_units_up")
    assert error_of(bad_units)["field"] == "events.1.data"
    assert (oversized.status_code, error_of(oversized)["code"]) == (400, "max_length")
    assert (old_spec.status_code, error_of(old_spec)["field"]) == (400, "events.0.specversion")
    assert (empty.status_code, error_of(empty)["field"]) == (400, "events")
    assert UsageEvent.objects.count() == 0


@pytest.mark.parametrize("minutes", [0, 61, "x", True])
def test_a_heartbeat_with_a_bad_span_is_400_and_records_nothing(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str], minutes: Any
) -> None:
    with time_machine.travel(NOW + HOUR, tick=False):
        post_events(agent_api, agent_key[1], [heartbeat(lease, NOW, n=0)])
    before = UsageEvent.objects.count()
    bad = {**heartbeat(lease, NOW + MINUTE, n=2), "data": {"units_up": 4, "minutes": minutes}}

    with time_machine.travel(NOW + HOUR, tick=False):
        response = post_events(agent_api, agent_key[1], [heartbeat(lease, NOW, n=1), bad])

    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["field"]) == (
        "invalid_minutes",
        "events.1.data",
    )
    assert error_of(response)["message"] == (
        "A heartbeat's “minutes” is a whole number from 1 to 60."
    )
    assert UsageEvent.objects.count() == before == 1


def test_one_heartbeat_can_attest_the_hour(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    start = heartbeat(lease, NOW + dt.timedelta(seconds=3), n=1)
    hour = {**start, "data": {"units_up": 4, "minutes": 60}}
    tail = heartbeat(lease, NOW + 59 * MINUTE, n=2)  # already covered: counted once

    with time_machine.travel(NOW + HOUR, tick=False):
        response = post_events(agent_api, agent_key[1], [hour, tail])
    settlement = leases_services.settle(lease=lease, now=NOW + HOUR)

    assert response.json()["accepted"] == 2
    assert settlement is not None
    assert (settlement.delivered_unit_seconds, settlement.charge) == (14_400, 32_000)


def test_a_span_may_not_vouch_for_minutes_to_come(
    lease: Lease, agent_api: APIClient, agent_key: tuple[ApiKey, str]
) -> None:
    ahead = {**heartbeat(lease, NOW, n=1), "data": {"units_up": 4, "minutes": 60}}
    closing = {**heartbeat(lease, NOW, n=2), "data": {"units_up": 4, "minutes": 6}}
    before = UsageEvent.objects.count()

    with time_machine.travel(NOW + MINUTE, tick=False):  # ahead ends 58 min from now; closing 4
        response = post_events(agent_api, agent_key[1], [ahead, closing])

    assert [o["outcome"] for o in response.json()["outcomes"]] == ["in_the_future", "accepted"]
    assert UsageEvent.objects.count() == before + 1


# --------------------------------------------------------------------------- the reference agent


def run_agent(secret: str, *args: str) -> str:
    out = StringIO()
    call_command(
        "run_provider_agent",
        "--once",
        "--key",
        secret,
        *args,
        transport=client_transport(),
        stdout=out,
    )
    return out.getvalue()


def test_the_reference_agent_provisions_and_reports_in_one_cycle(
    lease: Lease, agent_key: tuple[ApiKey, str], buyer: User
) -> None:
    with time_machine.travel(NOW + 5 * MINUTE, tick=False):
        output = run_agent(agent_key[1], "--source", "test-agent")
        again = run_agent(agent_key[1], "--source", "test-agent")

    assert "provisioned=1 failed=0 events=2 accepted=2" in output
    assert "provisioned=0 failed=0 events=2 accepted=0" in again  # same minute: duplicates
    assert Lease.objects.get().status == LeaseStatus.ACTIVE
    assert set(agent.access_details_for(acting(buyer), lease)) == {"ssh", "password", "notes"}
    assert sorted(UsageEvent.objects.values_list("type", "subject", "data")) == [
        ("com.suanli.heartbeat", leases_services.subject(lease), {"units_up": 4}),
        ("com.suanli.usage", leases_services.subject(lease), {"devices": 32, "units": 4}),
    ]


def test_the_reference_agent_can_drop_heartbeats_and_fail(
    lease: Lease, agent_key: tuple[ApiKey, str]
) -> None:
    with time_machine.travel(NOW + 5 * MINUTE, tick=False):
        dropped = run_agent(agent_key[1], "--drop-heartbeats", "1")
    with time_machine.travel(NOW + 6 * MINUTE, tick=False):
        failed = run_agent(agent_key[1], "--fail-after", "0")

    assert "provisioned=1 failed=0 events=1 accepted=1" in dropped
    assert list(UsageEvent.objects.values_list("type", flat=True)) == ["com.suanli.usage"]
    assert "failed=1 events=0" in failed
    done = Lease.objects.get()
    assert (done.status, done.close_reason) == (LeaseStatus.FAILED, "simulated_failure")


def test_the_reference_agent_refuses_a_bad_key() -> None:
    with pytest.raises(CommandError, match="sx_<prefix>_<secret>"):
        run_agent("not-a-key")


@pytest.fixture
def echo_server() -> Iterator[str]:
    class Echo(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = 200 if self.headers["X-Suanli-Signature"] else 403
            answer = json.dumps({"echo": json.loads(body), "status": status}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_the_urllib_transport_returns_status_and_body(echo_server: str) -> None:
    body = b'{"events": []}'

    ok = urllib_transport("POST", echo_server, {"X-Suanli-Signature": "sha256=00"}, body)
    refused = urllib_transport("POST", echo_server, {"X-Suanli-Signature": ""}, body)

    assert ok == (200, b'{"echo": {"events": []}, "status": 200}')
    assert refused == (403, b'{"echo": {"events": []}, "status": 403}')
    with pytest.raises(ValueError, match="http"):
        urllib_transport("GET", "file:///etc/passwd", {}, None)


# --------------------------------------------------------------------------- settings


@pytest.mark.skipif("LEASE_ACCESS_KEY" in os.environ, reason="a key is configured")
def test_the_development_access_key_derives_from_the_secret_key() -> None:
    assert derived_key(settings.SECRET_KEY, "suanli lease access v1") == settings.LEASE_ACCESS_KEY
    assert derived_key("a", "x") == derived_key("a", "x") != derived_key("a", "y")
    Fernet(settings.LEASE_ACCESS_KEY)  # a valid Fernet key


def test_production_requires_the_lease_access_key() -> None:
    without = {k: v for k, v in PRODUCTION_ENV.items() if k != "LEASE_ACCESS_KEY"}

    missing = manage(without, "check")
    present = manage({**without, "LEASE_ACCESS_KEY": Fernet.generate_key().decode()}, "check")

    assert "LEASE_ACCESS_KEY must be set when DJANGO_ENV=production" in missing.stderr
    assert present.returncode == 0, present.stderr


def test_a_batch_signed_with_another_providers_key_is_403_and_records_nothing(
    lease: Lease,
    agent_api: APIClient,
    agent_key: tuple[ApiKey, str],
    other_provider: Organization,
    api_key_for: KeyMaker,
) -> None:
    _other, other_secret = api_key_for(other_provider, "provider-agent")
    events = half_hour(lease)
    body = json.dumps({"events": events}).encode()
    before = state(lease)

    with time_machine.travel(NOW + HOUR, tick=False):
        response = post_events(agent_api, agent_key[1], events, signature=sign(other_secret, body))

    assert (response.status_code, error_of(response)["code"]) == (403, "bad_signature")
    assert state(lease) == before


def test_end_to_end_the_agent_reports_and_settlement_pays_exactly(
    lease: Lease,
    agent_api: APIClient,
    agent_key: tuple[ApiKey, str],
    buyer_org: Organization,
    provider_org: Organization,
) -> None:
    """Offer and order cleared into a lease (fixture); the agent provisions it and reports an
    hour of heartbeats; the lease ends; the provider gets price × delivered − fee, the platform
    the fees, the buyer the rest; Σ = 0 and the sealed ledger verifies."""
    from django.db.models import Sum

    from ledger.models import Account, Entry
    from ledger.services import seal
    from ledger.verify import verify

    make_active(agent_api, lease)
    hour = [heartbeat(lease, NOW + m * MINUTE + dt.timedelta(seconds=7), n=m) for m in range(60)]
    with time_machine.travel(NOW + HOUR, tick=False):
        assert post_events(agent_api, agent_key[1], hour).json()["accepted"] == 60
    leases_services.end_lease(lease=lease, how="completed", actor="system:test", now=NOW + HOUR)

    def balance(owner: str, purpose: str) -> int:
        totals = Account.objects.filter(owner=owner, purpose=purpose).aggregate(
            c=Sum("credits_posted"), d=Sum("debits_posted")
        )
        return (totals["c"] or 0) - (totals["d"] or 0)

    # 4 unit-hours × 80.00 = 32,000 fen; 3% platform fee 960; buyer fee share 320.
    assert balance(f"org:{provider_org.public_id}", "provider_payable") == 32_000 - 960
    assert balance("platform", "platform_fee_revenue") == 960 + 320
    assert balance(f"org:{buyer_org.public_id}", "wallet") == 1_000_000 - 32_000 - 320
    assert balance(f"org:{buyer_org.public_id}", "order_hold") == 0
    entries = Entry.objects.aggregate(c=Sum("credits_posted"), d=Sum("debits_posted"))
    assert entries["c"] == entries["d"]
    seal(now=NOW + 2 * HOUR)
    assert verify().ok


def test_the_buyer_reads_access_details_in_the_api_and_the_portal(
    lease: Lease,
    agent_api: APIClient,
    buyer: User,
    buyer_org: Organization,
    provider_org: Organization,
    api_key_for: KeyMaker,
    logged_in: Callable[[User], Client],
) -> None:
    buyer_api = bearer(APIClient(), api_key_for(buyer_org, "read")[1])
    provider_api = bearer(APIClient(), api_key_for(provider_org, "read")[1])
    url = f"/api/v1/leases/{lease.public_id}/access"
    assert error_of(buyer_api.get(url))["code"] == "access_not_ready"

    make_active(agent_api, lease)

    assert buyer_api.get(url).json() == {"access": ACCESS}
    assert (provider_api.get(url).status_code, error_of(provider_api.get(url))["code"]) == (
        403,
        "not_the_buyer",
    )
    page = logged_in(buyer).get(f"/leases/{lease.public_id}/")
    assert ACCESS["ssh"] in page.content.decode()
