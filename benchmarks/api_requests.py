"""API overhead: authenticated reads with a bearer key, and idempotent creates and replays.

Requests go through the whole Django + DRF stack in-process (no network), against real
PostgreSQL and Redis, so the figures measure our code and the database, not a web server.
"""

from __future__ import annotations

import time
import uuid

from _harness import django_stack, report

READS = 2000
CREATES = 300


def main() -> None:
    with django_stack():
        from rest_framework.test import APIClient

        from marketplace.accounts import services
        from marketplace.models import KybStatus, Organization, User

        owner = User.objects.create_user("bench@example.com", "bench-password-123")
        org = services.create_organization(
            user=owner,
            legal_name="Bench",
            country="CN",
            registration_id="B-1",
            is_provider=False,
            is_buyer=True,
        )
        Organization.objects.filter(pk=org.pk).update(kyb_status=KybStatus.APPROVED)
        _key, secret = services.create_api_key(
            organization=org, created_by=owner, name="bench", scopes=["read", "trade"]
        )
        reader = APIClient()
        reader.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        writer = APIClient()
        writer.force_login(owner)
        writer.credentials(HTTP_X_ORGANIZATION=str(org.public_id))

        started = time.perf_counter()
        for _ in range(READS):
            assert reader.get("/api/v1/me").status_code == 200
        read_seconds = time.perf_counter() - started

        keys = [str(uuid.uuid4()) for _ in range(CREATES)]
        started = time.perf_counter()
        for n, key in enumerate(keys):
            response = writer.post(
                "/api/v1/api-keys",
                {"name": f"k{n}", "scopes": ["read"]},
                format="json",
                HTTP_IDEMPOTENCY_KEY=key,
            )
            assert response.status_code == 201
        create_seconds = time.perf_counter() - started

        started = time.perf_counter()
        for n, key in enumerate(keys):
            response = writer.post(
                "/api/v1/api-keys",
                {"name": f"k{n}", "scopes": ["read"]},
                format="json",
                HTTP_IDEMPOTENCY_KEY=key,
            )
            assert response["Idempotent-Replayed"] == "true"
        replay_seconds = time.perf_counter() - started

    report(
        "api_requests",
        {
            "authenticated_reads_per_s": round(READS / read_seconds, 1),
            "idempotent_creates_per_s": round(CREATES / create_seconds, 1),
            "idempotent_replays_per_s": round(CREATES / replay_seconds, 1),
            "read_ms_mean": round(1000 * read_seconds / READS, 3),
            "create_ms_mean": round(1000 * create_seconds / CREATES, 3),
        },
    )


if __name__ == "__main__":
    main()
