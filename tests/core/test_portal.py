"""The portal shell: navigation per role, both languages, local assets, health probes, API docs."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import polib
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from marketplace.core import health
from marketplace.models import User
from marketplace.tasks import heartbeat
from tests.fixtures import ROOT

pytestmark = pytest.mark.django_db


def test_anonymous_home_offers_sign_up_and_log_in() -> None:
    page = Client().get("/").content.decode()

    assert reverse("signup") in page and reverse("login") in page
    assert reverse("admin:index") not in page


def test_navigation_follows_the_role(
    provider: User, regulator: User, operator: User, logged_in: Callable[[User], Client]
) -> None:
    provider_page = logged_in(provider).get("/").content.decode()
    regulator_page = logged_in(regulator).get("/").content.decode()
    operator_page = logged_in(operator).get("/").content.decode()

    assert "West Compute" in provider_page and "Operator admin" not in provider_page
    assert "Regulator console" in regulator_page and "Operator admin" not in regulator_page
    assert "Operator admin" in operator_page and "Regulator console" not in operator_page


def test_language_switch_to_simplified_chinese() -> None:
    client = Client()

    response = client.post(reverse("set_language"), {"language": "zh-hans", "next": "/"})
    page = client.get("/").content.decode()

    assert response.status_code == 302
    assert '<html lang="zh-hans">' in page
    assert "登录" in page and "注册" in page
    assert "Log in" not in page


def test_both_catalogs_are_compiled_and_current() -> None:
    for language in ("en", "zh_Hans"):
        folder = ROOT / "locale" / language / "LC_MESSAGES"
        po = polib.pofile(str(folder / "django.po"))
        mo = polib.mofile(str(folder / "django.mo"))
        # Keyed by context too: "Cancelled" (an order) and "Cancelled" (a lease) differ.
        assert {(e.msgctxt, e.msgid): e.msgstr for e in po.translated_entries()} == {
            (e.msgctxt, e.msgid): e.msgstr for e in mo if e.msgid
        }, f"{language}: django.mo is stale; run `make messages`"
    zh = polib.pofile(str(ROOT / "locale/zh_Hans/LC_MESSAGES/django.po"))
    assert zh.percent_translated() == 100
    assert not zh.fuzzy_entries()


def test_css_and_htmx_are_served_locally_with_csrf_wired() -> None:
    page = Client().get("/").content.decode()

    sources = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    assert any("htmx" in s for s in sources)
    assert 'hx-headers=\'{"X-CSRFToken": "' in page
    for source in sources:
        assert Client().get(source).status_code == 200


def test_api_docs_work_offline() -> None:
    docs = Client().get("/api/docs/").content.decode()
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    assets = re.findall(r'(?:src|href)="([^"]+)"', docs)
    assert all(not a.startswith(("http:", "https:", "//")) for a in assets), assets
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/me" in schema["paths"]


def test_every_create_endpoint_documents_the_idempotency_key() -> None:
    schema = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()

    creates = [
        (path, op)
        for path, ops in schema["paths"].items()
        for method, op in ops.items()
        if method == "post" and "201" in op["responses"]
    ]
    assert len(creates) >= 7  # organizations, invitations, keys, sites, pools, offers, orders
    for path, op in creates:
        headers = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "header"}
        assert headers["Idempotency-Key"]["required"] is True, path


def test_healthz_is_up() -> None:
    response = Client().get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_names_a_missing_heartbeat_then_turns_ready() -> None:
    cache.delete(health.HEARTBEAT_KEY)

    before = Client().get("/readyz")
    heartbeat()  # what beat schedules and a worker runs
    after = Client().get("/readyz")

    assert before.status_code == 503
    assert before.json()["checks"] == {
        "postgres": "ok",
        "redis": "ok",
        "celery_beat": "no heartbeat yet",
    }
    assert after.status_code == 200
    assert after.json() == {
        "status": "ok",
        "checks": {"postgres": "ok", "redis": "ok", "celery_beat": "ok"},
    }


def test_readyz_reports_a_stale_heartbeat(now: dt.datetime) -> None:
    health.record_heartbeat(now=now - dt.timedelta(minutes=10))

    response = Client().get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["celery_beat"].startswith("stale: last heartbeat 6")


def test_htmx_form_errors_come_back_as_the_section_with_the_error(
    provider: User, logged_in: Callable[[User], Client]
) -> None:
    from marketplace.models import Invitation, Organization

    org = Organization.objects.get(memberships__user=provider)
    client = logged_in(provider)

    response = client.post(
        reverse("invitation-create", args=[org.public_id]),
        {"email": "not-an-email", "role": "trader"},
        HTTP_HX_REQUEST="true",
    )
    page = client.get("/").content.decode()

    body = response.content.decode()
    assert response.status_code == 400
    assert body.lstrip().startswith('<section class="card" id="invitations">')
    assert "Enter a valid email address." in body
    assert Invitation.objects.count() == 0
    # htmx swaps 400/422 fragments (inline errors) instead of discarding them
    assert '"code": "(400|422)", "swap": true, "error": false' in page


def test_the_country_list_starts_blank() -> None:
    from marketplace.accounts.forms import OrganizationForm

    rendered = str(OrganizationForm()["country"])

    assert '<option value="" selected>—</option>' in rendered
