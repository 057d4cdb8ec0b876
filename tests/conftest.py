"""Personas and helpers shared by the suite."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone, translation
from rest_framework.test import APIClient

from marketplace.accounts import services
from marketplace.models import ApiKey, KybStatus, Membership, Organization, Role, SiteRole, User

PASSWORD = "a-long-test-password-9"


@pytest.fixture(autouse=True)
def _default_language() -> None:
    """Every test starts in the default language: a request through the test client leaves its
    language active in the thread (a test that switched to Chinese would change the next
    test's messages)."""
    translation.activate(settings.LANGUAGE_CODE)


def make_user(email: str, *, site_role: str = SiteRole.NONE) -> User:
    return User.objects.create_user(
        email, PASSWORD, full_name=email.split("@")[0].title(), site_role=site_role
    )


def make_org(owner: User, name: str, *, provider: bool, approved: bool = True) -> Organization:
    organization = services.create_organization(
        user=owner,
        legal_name=name,
        country="CN",
        registration_id=f"REG-{name.upper().replace(' ', '-')}",
        is_provider=provider,
        is_buyer=not provider,
    )
    if approved:
        Organization.objects.filter(pk=organization.pk).update(kyb_status=KybStatus.APPROVED)
        organization.refresh_from_db()
    return organization


@pytest.fixture
def now() -> dt.datetime:
    return timezone.now()


@pytest.fixture
def operator(db: None) -> User:
    return make_user("operator@example.com", site_role=SiteRole.OPERATOR)


@pytest.fixture
def regulator(db: None) -> User:
    return make_user("regulator@example.com", site_role=SiteRole.REGULATOR)


@pytest.fixture
def provider(db: None) -> User:
    user = make_user("owner@provider.example")
    make_org(user, "West Compute", provider=True)
    return user


@pytest.fixture
def provider_org(provider: User) -> Organization:
    return Organization.objects.get(memberships__user=provider)


@pytest.fixture
def buyer(db: None) -> User:
    user = make_user("owner@buyer.example")
    make_org(user, "East Models", provider=False)
    return user


@pytest.fixture
def buyer_org(buyer: User) -> Organization:
    return Organization.objects.get(memberships__user=buyer)


@pytest.fixture
def stranger(db: None) -> User:
    return make_user("stranger@example.com")


@pytest.fixture
def add_member() -> Callable[[Organization, str, str], User]:
    def add(organization: Organization, email: str, role: str) -> User:
        user = make_user(email)
        Membership.objects.create(user=user, organization=organization, role=role)
        return user

    return add


@pytest.fixture
def api_key_for(
    db: None,
) -> Callable[..., tuple[ApiKey, str]]:
    def create(organization: Organization, *scopes: str) -> tuple[ApiKey, str]:
        owner = Membership.objects.filter(organization=organization, role=Role.OWNER).first()
        assert owner is not None
        return services.create_api_key(
            organization=organization,
            created_by=owner.user,
            name="test key",
            scopes=scopes or ("read",),
        )

    return create


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def bearer(client: APIClient, secret: str) -> APIClient:
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def logged_in() -> Callable[[User], Client]:
    def login(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return login


def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body
