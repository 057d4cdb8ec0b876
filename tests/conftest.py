"""The personas: an operator, a regulator, a provider and a buyer (each the owner of an approved
organization), a stranger, and members added to an organization. Shared fixtures by topic live in
``tests/fixtures/``, loaded here as plugins; factories in ``tests/factories.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.conf import settings
from django.utils import timezone, translation

from marketplace.models import Organization, SiteRole, User
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory

# A plugin is listed after the plugins it imports, so that pytest rewrites each one's asserts.
pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.http",
    "tests.fixtures.ledger",
    "tests.fixtures.market",
    "tests.fixtures.clearing",
]


@pytest.fixture(autouse=True)
def _default_language() -> None:
    """Every test starts in the default language: a request through the test client leaves its
    language active in the thread (a test that switched to Chinese would change the next
    test's messages)."""
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def now() -> dt.datetime:
    return timezone.now()


@pytest.fixture
def operator(db: None) -> User:
    return UserFactory.create(email="operator@example.com", site_role=SiteRole.OPERATOR)


@pytest.fixture
def regulator(db: None) -> User:
    return UserFactory.create(email="regulator@example.com", site_role=SiteRole.REGULATOR)


@pytest.fixture
def provider(db: None) -> User:
    user = UserFactory.create(email="owner@provider.example")
    OrganizationFactory.create(owner=user, legal_name="West Compute", provider=True)
    return user


@pytest.fixture
def provider_org(provider: User) -> Organization:
    return Organization.objects.get(memberships__user=provider)


@pytest.fixture
def buyer(db: None) -> User:
    user = UserFactory.create(email="owner@buyer.example")
    OrganizationFactory.create(owner=user, legal_name="East Models", buyer=True)
    return user


@pytest.fixture
def buyer_org(buyer: User) -> Organization:
    return Organization.objects.get(memberships__user=buyer)


@pytest.fixture
def stranger(db: None) -> User:
    return UserFactory.create(email="stranger@example.com")


@pytest.fixture
def add_member() -> Callable[[Organization, str, str], User]:
    """A new user joining an organization by email with a role."""

    def add(organization: Organization, email: str, role: str) -> User:
        return MembershipFactory.create(
            organization=organization, user__email=email, role=role
        ).user

    return add
