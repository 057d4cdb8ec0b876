"""A lease's offer, pool and market are one composite reference (lease_offer_pool_market): its
copies of the offer's pool and market cannot disagree with the offer, nor the offer move under
it."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from marketplace.models import Lease, Offer, Pool
from tests.factories import PoolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_pool(lease: Lease) -> Pool:
    return PoolFactory.create(
        site=lease.pool.site, name="other", device_model=lease.pool.device_model, units=8
    )


def references() -> list[tuple[int, int, int, int]]:
    return list(Lease.objects.values_list("pk", "offer_id", "pool_id", "market_id"))


def test_a_lease_cannot_name_a_pool_its_offer_is_not_of(lease: Lease, other_pool: Pool) -> None:
    before = references()

    # The savepoint must see the error to roll back, so pytest.raises wraps it.
    with pytest.raises(IntegrityError, match="lease_offer_pool_market"), transaction.atomic():  # noqa: PT012
        Lease.objects.filter(pk=lease.pk).update(pool=other_pool)
        connection.check_constraints()  # the deferred foreign keys, as the commit would

    assert references() == before


def test_an_offer_cannot_move_to_another_pool_under_its_leases(
    lease: Lease, other_pool: Pool
) -> None:
    with pytest.raises(IntegrityError, match="lease_offer_pool_market"), transaction.atomic():  # noqa: PT012
        Offer.objects.filter(pk=lease.offer_id).update(pool=other_pool)
        connection.check_constraints()

    assert Offer.objects.get(pk=lease.offer_id).pool_id == lease.pool_id
    assert references() == [(lease.pk, lease.offer_id, lease.pool_id, lease.market_id)]
