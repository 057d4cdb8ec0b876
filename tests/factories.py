# factory_boy's declarations (Sequence, SubFactory, ...) are not annotated:
# mypy: disable-error-code="no-untyped-call"
"""factory_boy factories for the rows tests make by hand: users, organizations and memberships,
markets, device models, sites and pools.

Call ``XFactory.create(...)`` (typed: it returns the model) rather than ``XFactory(...)``.
Organizations are created through ``accounts.services.create_organization``, as sign-up creates
them (with the owner's membership), then approved unless ``approved=False``. Sites and pools are
plain rows: a test of listing capacity goes through ``trading.supply`` (the ``site`` and ``pool``
fixtures do).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from factory.declarations import LazyAttribute, SelfAttribute, Sequence, SubFactory, Trait
from factory.django import DjangoModelFactory

from marketplace.accounts import services
from marketplace.models import (
    DeviceModel,
    KybStatus,
    Market,
    Membership,
    Organization,
    Pool,
    Role,
    Site,
    SiteRole,
    User,
)

PASSWORD = "a-long-test-password-9"


class UserFactory(DjangoModelFactory[User]):
    """A person with the suite's password, named after the email's local part."""

    class Meta:
        model = User

    email = Sequence(lambda n: f"user{n}@example.com")
    password = PASSWORD
    full_name = LazyAttribute(lambda user: user.email.split("@")[0].title())
    site_role = SiteRole.NONE

    @classmethod
    def _create(cls, model_class: type[User], *args: Any, **kwargs: Any) -> User:
        """Through the manager, as sign-up does: the email normalized, the password hashed."""
        return model_class.objects.create_user(*args, **kwargs)


class OrganizationFactory(DjangoModelFactory[Organization]):
    """An approved buyer organization owned by a new user; ``provider=True`` makes it a provider
    only, ``approved=False`` leaves its KYB pending."""

    class Meta:
        model = Organization

    class Params:
        approved = True
        provider = Trait(is_provider=True, is_buyer=False)
        buyer = Trait(is_provider=False, is_buyer=True)

    owner = SubFactory(UserFactory)
    legal_name = Sequence(lambda n: f"Organization {n}")
    country = "CN"
    registration_id = LazyAttribute(
        lambda organization: f"REG-{organization.legal_name.upper().replace(' ', '-')}"
    )
    is_provider = False
    is_buyer = True
    kyb_status = LazyAttribute(
        lambda organization: KybStatus.APPROVED if organization.approved else KybStatus.PENDING
    )

    @classmethod
    def _create(
        cls,
        model_class: type[Organization],
        *args: Any,
        owner: User,
        kyb_status: str,
        **kwargs: Any,
    ) -> Organization:
        """The service creates it pending with ``owner``'s membership; then the KYB decision."""
        organization = services.create_organization(user=owner, **kwargs)
        if organization.kyb_status != kyb_status:
            model_class.objects.filter(pk=organization.pk).update(kyb_status=kyb_status)
            organization.refresh_from_db()
        return organization


class MembershipFactory(DjangoModelFactory[Membership]):
    """A new user's membership of an organization, as a trader unless ``role`` says otherwise."""

    class Meta:
        model = Membership

    user = SubFactory(UserFactory)
    organization = SubFactory(OrganizationFactory)
    role = Role.TRADER


class MarketFactory(DjangoModelFactory[Market]):
    """The CNY market with the model's rules (no buyer fee); ``usd=True`` for the USD one."""

    class Meta:
        model = Market

    class Params:
        usd = Trait(slug="usd", name="International compute market", currency="USD")

    slug = "cny"
    name = "China compute market"
    currency = "CNY"


class DeviceModelFactory(DjangoModelFactory[DeviceModel]):
    """An NVIDIA H100 SXM as its datasheet gives it (0.9894 SCU); ``ascend_910b=True`` for the
    suite's Ascend 910B (320 BF16 TFLOPS, 64 GB). A slug already listed is returned as it is."""

    class Meta:
        model = DeviceModel
        django_get_or_create = ("slug",)

    class Params:
        ascend_910b = Trait(
            slug="huawei-ascend-910b", bf16_tflops=Decimal("320.000"), memory_gb=Decimal(64)
        )

    slug = "nvidia-h100-sxm"
    vendor = "NVIDIA"
    name = SelfAttribute("slug")
    kind = "gpu"
    memory_gb = Decimal(80)
    memory_bandwidth_gbps = Decimal(3350)
    fp64_tflops = Decimal("33.5")
    fp32_tflops = Decimal("66.9")
    bf16_tflops = Decimal("989.400")
    int8_tops = Decimal("1978.9")
    tdp_watts = 700
    source_url = "https://example.com/datasheet"


class SiteFactory(DjangoModelFactory[Site]):
    """A provider's green site in Qingyang, Gansu."""

    class Meta:
        model = Site

    organization = SubFactory(OrganizationFactory, provider=True)
    name = Sequence(lambda n: f"Site {n}")
    country = "CN"
    region = "CN-GS"
    city = "Qingyang"
    jurisdiction = "CN"
    pue = Decimal("1.15")
    renewable_share = Decimal("0.62")
    carbon_g_per_kwh = 420


class PoolFactory(DjangoModelFactory[Pool]):
    """Ten single-H100 units at a new site."""

    class Meta:
        model = Pool

    site = SubFactory(SiteFactory)
    name = Sequence(lambda n: f"pool-{n}")
    device_model = SubFactory(DeviceModelFactory)
    units = 10
