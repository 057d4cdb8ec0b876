"""The REST API: bearer keys, scopes, tenant isolation, error envelope, idempotency, pagination."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from marketplace.accounts import services
from marketplace.api.idempotency import _lock_id
from marketplace.core.owners import ledger_owner
from marketplace.models import ApiKey, IdempotencyRecord, Invitation, Organization, Role, User
from tests.fixtures.http import bearer, error_of
from tests.fixtures.ledger import round_trips

pytestmark = pytest.mark.django_db

KeyMaker = Callable[..., tuple[ApiKey, str]]


def test_me_with_an_api_key(api: APIClient, buyer_org: Organization, api_key_for: KeyMaker) -> None:
    api_key, secret = api_key_for(buyer_org, "read", "trade")

    response = bearer(api, secret).get("/api/v1/me")

    assert response.status_code == 200
    body = response.json()
    assert body["organization"]["id"] == str(buyer_org.public_id)
    assert (body["scopes"], body["api_key"], body["email"]) == (
        ["read", "trade"],
        f"sx_{api_key.prefix}_",
        None,
    )
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("Bearer", "malformed_api_key"),
        ("Token sx_0123456789ab_" + "a" * 43, "malformed_api_key"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer sx_0123456789ab_" + "a" * 43, "invalid_api_key"),
    ],
)
def test_malformed_or_unknown_keys_get_401_and_change_nothing(
    api: APIClient, buyer_org: Organization, api_key_for: KeyMaker, header: str, code: str
) -> None:
    api_key_for(buyer_org)
    before = ApiKey.objects.values("last_used_at", "revoked_at").get()

    response = api.get("/api/v1/me", HTTP_AUTHORIZATION=header)

    assert response.status_code == 401
    assert error_of(response)["code"] == code
    assert response["WWW-Authenticate"] == "Bearer"
    assert ApiKey.objects.values("last_used_at", "revoked_at").get() == before


def test_a_right_prefix_with_a_wrong_secret_is_unknown(
    api: APIClient, buyer_org: Organization, api_key_for: KeyMaker
) -> None:
    api_key, secret = api_key_for(buyer_org)
    forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")

    response = bearer(api, forged).get("/api/v1/me")

    assert response.status_code == 401
    assert error_of(response)["code"] == "invalid_api_key"
    api_key.refresh_from_db()
    assert api_key.last_used_at is None


def test_the_key_lookup_loads_what_the_orm_loads(
    buyer_org: Organization, api_key_for: KeyMaker, now: dt.datetime
) -> None:
    """``queries.api_key_for`` builds the key and its organization from one plain statement;
    every field equals the ORM's value, of the same type (a field needing a database
    converter would differ here)."""
    from marketplace.accounts.queries import api_key_for as lookup

    api_key, secret = api_key_for(buyer_org, "read", "trade")
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now, revoked_at=now)  # no NULLs

    found = lookup(secret)
    expected = ApiKey.objects.select_related("organization").get(pk=api_key.pk)

    assert found is not None and found.organization is not None
    for got, want in ((found, expected), (found.organization, expected.organization)):
        values = [(f.attname, getattr(got, f.attname)) for f in type(want)._meta.concrete_fields]
        assert values == [(f.attname, getattr(want, f.attname)) for f in want._meta.concrete_fields]
        assert [type(v) for _name, v in values] == [
            type(getattr(want, f.attname)) for f in want._meta.concrete_fields
        ]
    assert found._state.adding is False and found.organization._state.adding is False
    assert lookup(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None


def test_a_revoked_key_gets_401(
    api: APIClient, buyer_org: Organization, api_key_for: KeyMaker, now: dt.datetime
) -> None:
    api_key, secret = api_key_for(buyer_org)
    services.revoke_api_key(api_key=api_key, now=now)

    response = bearer(api, secret).get("/api/v1/me")

    assert response.status_code == 401
    assert error_of(response)["code"] == "revoked_api_key"
    api_key.refresh_from_db()
    assert (api_key.revoked_at, api_key.last_used_at) == (now, None)


def test_a_key_without_the_needed_scope_gets_403(
    api: APIClient, provider_org: Organization, api_key_for: KeyMaker
) -> None:
    _api_key, secret = api_key_for(provider_org, "provider-agent")

    response = bearer(api, secret).get(f"/api/v1/organizations/{provider_org.public_id}/members")

    assert response.status_code == 403
    assert error_of(response) == {
        "code": "insufficient_scope",
        "message": "This action needs the “read” scope.",
        "field": None,
    }


def test_a_key_cannot_create_keys_or_invite(
    api: APIClient, provider_org: Organization, api_key_for: KeyMaker
) -> None:
    _api_key, secret = api_key_for(provider_org, "read", "trade")
    client = bearer(api, secret)

    keys = client.post(
        "/api/v1/api-keys",
        {"name": "x", "scopes": ["trade"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    invite = client.post(
        f"/api/v1/organizations/{provider_org.public_id}/invitations",
        {"email": "a@b.example", "role": "owner"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k2",
    )

    assert (keys.status_code, error_of(keys)["code"]) == (403, "owner_required")
    assert (invite.status_code, error_of(invite)["code"]) == (403, "owner_required")
    assert ApiKey.objects.count() == 1
    assert Invitation.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0


def test_another_organizations_data_is_not_found_by_key(
    api: APIClient, buyer_org: Organization, provider_org: Organization, api_key_for: KeyMaker
) -> None:
    _api_key, secret = api_key_for(buyer_org, "read", "trade")
    client = bearer(api, secret)

    detail = client.get(f"/api/v1/organizations/{provider_org.public_id}")
    members = client.get(f"/api/v1/organizations/{provider_org.public_id}/members")
    listing = client.get("/api/v1/organizations")

    assert (detail.status_code, members.status_code) == (404, 404)
    assert error_of(detail)["code"] == "not_found"
    assert provider_org.legal_name not in detail.content.decode() + members.content.decode()
    assert [o["id"] for o in listing.json()["data"]] == [str(buyer_org.public_id)]


def test_another_organizations_data_is_not_found_by_session(
    buyer: User, buyer_org: Organization, provider_org: Organization
) -> None:
    client = APIClient()
    client.force_login(buyer)

    detail = client.get(f"/api/v1/organizations/{provider_org.public_id}")
    mine = client.get(f"/api/v1/organizations/{buyer_org.public_id}")
    as_other = client.get("/api/v1/me", HTTP_X_ORGANIZATION=str(provider_org.public_id))

    assert (detail.status_code, mine.status_code, as_other.status_code) == (404, 200, 404)


def test_session_writes_need_the_csrf_token(buyer: User) -> None:
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(buyer)

    response = client.post(
        "/api/v1/organizations",
        {"legal_name": "X", "country": "CN", "registration_id": "R", "is_buyer": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="csrf-1",
    )

    assert response.status_code == 403
    assert "CSRF" in error_of(response)["message"]
    assert Organization.objects.count() == 1


def test_unauthenticated_requests_get_401() -> None:
    response = APIClient().get("/api/v1/me")

    assert response.status_code in {401, 403}
    assert error_of(response)["code"] == "not_authenticated"


def test_validation_errors_name_the_field(buyer: User) -> None:
    client = APIClient()
    client.force_login(buyer)

    response = client.post(
        "/api/v1/organizations",
        {"legal_name": "X", "country": "ZZ", "registration_id": "R", "is_buyer": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY="v-1",
    )
    missing = client.post(
        "/api/v1/organizations", {"country": "CN"}, format="json", HTTP_IDEMPOTENCY_KEY="v-2"
    )

    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["field"]) == (
        "unknown_country",
        "country",
    )
    assert missing.status_code == 400
    assert (error_of(missing)["code"], error_of(missing)["field"]) == ("required", "legal_name")
    assert Organization.objects.count() == 1
    assert IdempotencyRecord.objects.count() == 0


# --------------------------------------------------------------------------- idempotency


def _create_key(client: APIClient, key: str, name: str = "ci", **extra: Any) -> Any:
    return client.post(
        "/api/v1/api-keys",
        {"name": name, "scopes": ["read"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
        **extra,
    )


@pytest.fixture
def owner_client(buyer: User, buyer_org: Organization) -> APIClient:
    client = APIClient()
    client.force_login(buyer)
    client.credentials(HTTP_X_ORGANIZATION=str(buyer_org.public_id))
    return client


def test_api_key_created_once_and_shown_once(owner_client: APIClient) -> None:
    first = _create_key(owner_client, "create-1")
    replay = _create_key(owner_client, "create-1")

    assert first.status_code == replay.status_code == 201
    assert first.json()["key"].startswith("sx_")
    assert replay["Idempotent-Replayed"] == "true"
    assert replay.json() == {**first.json(), "key": None}
    assert ApiKey.objects.count() == 1
    secret = first.json()["key"]
    assert bearer(APIClient(), secret).get("/api/v1/me").status_code == 200


def test_same_key_with_a_different_body_is_422_and_changes_nothing(owner_client: APIClient) -> None:
    _create_key(owner_client, "create-1", name="first")
    before = list(ApiKey.objects.values_list("pk", "name"))

    response = _create_key(owner_client, "create-1", name="second")

    assert response.status_code == 422
    assert error_of(response) == {
        "code": "idempotency_key_reused",
        "message": "This Idempotency-Key was used with a different request.",
        "field": "Idempotency-Key",
    }
    assert list(ApiKey.objects.values_list("pk", "name")) == before
    assert IdempotencyRecord.objects.count() == 1


def test_same_key_while_the_first_is_in_flight_is_409(
    owner_client: APIClient, buyer_org: Organization
) -> None:
    # Another connection holds the request's lock, as the first request would while it runs.
    params = connection.get_connection_params()
    other = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"})
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [_lock_id(ledger_owner(buyer_org), "busy")])

        response = _create_key(owner_client, "busy")
    finally:
        other.close()

    assert response.status_code == 409
    assert error_of(response)["code"] == "idempotency_request_in_flight"
    assert ApiKey.objects.count() == 0
    assert IdempotencyRecord.objects.count() == 0
    assert _create_key(owner_client, "busy").status_code == 201


def test_the_key_is_locked_and_its_record_read_in_one_round_trip(
    owner_client: APIClient, buyer_org: Organization
) -> None:
    from marketplace.api.idempotency import _lock_and_look_up

    assert _create_key(owner_client, "seen").status_code == 201
    scope = ledger_owner(buyer_org)

    with transaction.atomic(), round_trips() as sent:
        fresh = _lock_and_look_up(scope, "new")
        seen = _lock_and_look_up(scope, "seen")

    assert len(sent) == 2  # one per call: the lock and the read go together
    assert fresh == (True, None)
    assert seen[0] is True and seen[1] is not None and seen[1][1] == 201


def test_a_create_without_an_idempotency_key_is_refused(owner_client: APIClient) -> None:
    response = owner_client.post(
        "/api/v1/api-keys", {"name": "x", "scopes": ["read"]}, format="json"
    )

    assert response.status_code == 400
    assert (error_of(response)["code"], error_of(response)["field"]) == (
        "idempotency_key_required",
        "Idempotency-Key",
    )
    assert ApiKey.objects.count() == 0


def test_idempotency_keys_are_scoped_to_the_organization(
    owner_client: APIClient, provider: User, provider_org: Organization
) -> None:
    other = APIClient()
    other.force_login(provider)
    other.credentials(HTTP_X_ORGANIZATION=str(provider_org.public_id))

    mine = _create_key(owner_client, "shared-key")
    theirs = _create_key(other, "shared-key")

    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert "Idempotent-Replayed" not in theirs
    assert mine.json()["id"] != theirs.json()["id"]


def test_a_failed_request_leaves_the_key_free(owner_client: APIClient) -> None:
    bad = owner_client.post(
        "/api/v1/api-keys",
        {"name": "x", "scopes": []},
        format="json",
        HTTP_IDEMPOTENCY_KEY="retry-me",
    )
    good = _create_key(owner_client, "retry-me")

    assert (bad.status_code, good.status_code) == (400, 201)
    assert IdempotencyRecord.objects.count() == 1


def test_idempotency_records_are_kept_a_day_and_then_purged(
    owner_client: APIClient, now: dt.datetime
) -> None:
    _create_key(owner_client, "old")
    _create_key(owner_client, "new")
    IdempotencyRecord.objects.filter(key="old").update(created_at=now - dt.timedelta(hours=49))
    IdempotencyRecord.objects.filter(key="new").update(created_at=now - dt.timedelta(hours=23))

    deleted = services.purge_idempotency_records(now=now)

    assert deleted == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_organization_create_replays_for_the_same_user(stranger: User) -> None:
    client = APIClient()
    client.force_login(stranger)
    body = {
        "legal_name": "Gansu DC",
        "country": "cn",
        "registration_id": "G-1",
        "is_provider": True,
    }

    first = client.post("/api/v1/organizations", body, format="json", HTTP_IDEMPOTENCY_KEY="o1")
    again = client.post("/api/v1/organizations", body, format="json", HTTP_IDEMPOTENCY_KEY="o1")

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json() == again.json()
    assert first.json()["kyb_status"] == "pending" and first.json()["country"] == "CN"
    assert Organization.objects.get().memberships.get().role == Role.OWNER


# --------------------------------------------------------------------------- lists and keys


def test_members_list_is_a_cursor_paginated_envelope(
    owner_client: APIClient,
    buyer_org: Organization,
    add_member: Callable[[Organization, str, str], User],
) -> None:
    for n in range(3):
        add_member(buyer_org, f"member{n}@buyer.example", Role.VIEWER)

    page1 = owner_client.get(f"/api/v1/organizations/{buyer_org.public_id}/members?limit=2")
    page2 = owner_client.get(page1.json()["next"])

    assert set(page1.json()) == {"data", "next", "previous"}
    assert len(page1.json()["data"]) == 2 and len(page2.json()["data"]) == 2
    assert page2.json()["next"] is None
    emails = {m["email"] for m in page1.json()["data"] + page2.json()["data"]}
    assert emails == {"owner@buyer.example"} | {f"member{n}@buyer.example" for n in range(3)}


def test_owner_lists_and_revokes_keys(owner_client: APIClient) -> None:
    created = _create_key(owner_client, "k").json()

    listed = owner_client.get("/api/v1/api-keys").json()["data"]
    revoked = owner_client.post(f"/api/v1/api-keys/{created['id']}/revoke")
    again = owner_client.post(f"/api/v1/api-keys/{created['id']}/revoke")
    unknown = owner_client.post(f"/api/v1/api-keys/{uuid.uuid4()}/revoke")

    assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    assert unknown.status_code == 404
    assert bearer(APIClient(), created["key"]).get("/api/v1/me").status_code == 401


def test_portal_creates_a_key_shown_once_and_revokes_it(
    buyer: User, buyer_org: Organization
) -> None:
    client = Client()
    client.force_login(buyer)

    created = client.post(
        reverse("api-key-create", args=[buyer_org.public_id]),
        {"name": "ci", "scopes": ["read", "trade"]},
        HTTP_HX_REQUEST="true",
    )
    api_key = ApiKey.objects.get()
    secret = created.context["new_secret"]
    page = client.get(reverse("organization", args=[buyer_org.public_id])).content.decode()
    client.post(reverse("api-key-revoke", args=[buyer_org.public_id, api_key.public_id]))

    assert created.status_code == 200
    assert secret in created.content.decode() and secret not in page
    assert created.content.decode().lstrip().startswith('<section class="card" id="api-keys">')
    assert sorted(api_key.scopes) == ["read", "trade"]
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
