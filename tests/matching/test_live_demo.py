"""The live demo market of `make run`: its setup is idempotent, and one step of it trades for real —
orders, a cleared round with volume, leases the providers' agents make active over the agent API.
"""

from __future__ import annotations

import datetime as dt
import threading
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from ledger.models import Account, Transfer
from marketplace.dev.devstack import demo_market_enabled
from marketplace.models import (
    ApiKey,
    ClearingRound,
    Lease,
    LeaseStatus,
    Membership,
    Offer,
    OfferStatus,
    Order,
    Organization,
    Pool,
    Settlement,
    Site,
    User,
)
from matching.simulation import live
from matching.simulation.live import AGENT_KEY_NAME, BUYERS, PROVIDERS, LiveDemo
from tests.fixtures.http import client_transport

pytestmark = pytest.mark.django_db
POOLS = sum(len(p.pools) for p in PROVIDERS)


@pytest.fixture(autouse=True)
def fixtures(db: None) -> None:
    """What `make run` loads before the demo: the catalog and the markets."""
    call_command("loaddata", "catalog", "markets", verbosity=0)


def demo(**changes: Any) -> LiveDemo:
    lines: list[str] = []
    values: dict[str, Any] = {
        "url": "http://testserver",
        "seed": 7,
        "transport": client_transport(),
        "log": lines.append,
    }
    values.update(changes)
    return LiveDemo(**values)


def counts() -> dict[str, int]:
    return {
        "organizations": Organization.objects.count(),
        "users": User.objects.count(),
        "memberships": Membership.objects.count(),
        "sites": Site.objects.count(),
        "pools": Pool.objects.count(),
        "offers": Offer.objects.count(),
        "live agent keys": ApiKey.objects.filter(
            name=AGENT_KEY_NAME, revoked_at__isnull=True
        ).count(),
        "accounts": Account.objects.count(),
        "transfers": Transfer.objects.count(),
    }


def test_setup_creates_the_traders_supply_and_wallets(now: dt.datetime) -> None:
    demo().setup(now=now)

    providers = Organization.objects.filter(is_provider=True)
    buyers = Organization.objects.filter(is_buyer=True)
    assert sorted(providers.values_list("registration_id", flat=True)) == sorted(
        p.registration for p in PROVIDERS
    )
    assert sorted(buyers.values_list("registration_id", flat=True)) == sorted(
        b.registration for b in BUYERS
    )
    assert {o.kyb_status for o in [*providers, *buyers]} == {"approved"}
    assert Site.objects.count() == len(PROVIDERS)
    assert Pool.objects.count() == POOLS
    offers = Offer.objects.filter(status=OfferStatus.ACTIVE, market__slug="cny")
    assert offers.count() == POOLS
    for offer in offers:
        assert offer.units == offer.pool.units
        assert offer.available_from <= now
        assert offer.available_until == now + dt.timedelta(days=30)
    # The west is cheaper than the east for the same node.
    h800 = {
        o.pool.site.region: o.min_price
        for o in offers.filter(pool__device_model__slug="nvidia-h800-sxm")
    }
    assert max(h800["CN-GS"], h800["CN-NM"]) < min(h800["CN-SH"], h800["CN-GD"])
    # One provider-agent key per provider; every buyer's wallet holds 1,000,000.00 CNY.
    keys = ApiKey.objects.filter(name=AGENT_KEY_NAME, revoked_at__isnull=True)
    assert keys.count() == len(PROVIDERS)
    assert {tuple(k.scopes) for k in keys} == {("provider-agent",)}
    wallets = Account.objects.filter(purpose="wallet", owner__startswith="org:")
    assert sorted(w.credits_posted for w in wallets) == [100_000_000] * len(BUYERS)


def test_setup_twice_changes_nothing_but_the_agents_keys(now: dt.datetime) -> None:
    demo().setup(now=now)
    before = counts()
    first_keys = set(ApiKey.objects.filter(name=AGENT_KEY_NAME).values_list("pk", flat=True))

    demo(seed=8).setup(now=now + dt.timedelta(hours=1))

    assert counts() == before
    # The earlier keys are revoked and replaced (their secrets left with the earlier process).
    assert (
        set(
            ApiKey.objects.filter(pk__in=first_keys, revoked_at__isnull=True).values_list(
                "pk", flat=True
            )
        )
        == set()
    )
    assert ApiKey.objects.filter(name=AGENT_KEY_NAME).count() == 2 * len(PROVIDERS)


def test_a_restart_near_the_end_of_the_offers_renews_them_back_to_back(now: dt.datetime) -> None:
    demo().setup(now=now, agents=False)
    later = now + dt.timedelta(days=25)

    demo().setup(now=later, agents=False)

    assert Offer.objects.count() == 2 * POOLS
    for pool in Pool.objects.all():
        first, second = pool.offers.order_by("pk")
        assert second.available_from == first.available_until
        assert second.available_until == later + dt.timedelta(days=30)


def test_one_step_trades_clears_and_makes_leases_active(now: dt.datetime) -> None:
    trader = demo()
    trader.setup(now=now)

    outcome = trader.prime(now=now)
    activity = trader.step(now=now)

    rnd = ClearingRound.objects.get()
    assert outcome.created
    assert rnd == outcome.round
    assert rnd.volume_units > 0
    assert rnd.certificate_ok
    assert Order.objects.count() == len(BUYERS) + activity.placed
    leases = Lease.objects.filter(round=rnd)
    assert leases.count() > 0
    # The agents acknowledged every lease over the agent API and made it ready.
    assert set(leases.values_list("status", flat=True)) == {LeaseStatus.ACTIVE}
    assert activity.provisioned == leases.count()
    assert activity.events >= leases.count()  # a heartbeat per lease at least
    assert activity.agents_down == 0


def test_a_round_already_cleared_is_left_alone_and_the_orders_wait(now: dt.datetime) -> None:
    trader = demo()
    trader.setup(now=now)
    trader.prime(now=now)
    rnd = ClearingRound.objects.get()
    leases = Lease.objects.count()

    outcome = trader.prime(now=now)

    assert not outcome.created
    assert outcome.round == rnd
    assert Lease.objects.count() == leases
    assert Order.objects.filter(last_round__isnull=True).count() == len(BUYERS)


def test_without_the_web_server_the_agents_wait_and_trading_goes_on(now: dt.datetime) -> None:
    def refused(*args: Any) -> tuple[int, bytes]:
        raise ConnectionRefusedError("connection refused")

    trader = demo(transport=refused)
    trader.setup(now=now)
    trader.prime(now=now)

    activity = trader.step(now=now)

    assert activity.agents_down == len(PROVIDERS)
    assert set(Lease.objects.values_list("status", flat=True)) == {LeaseStatus.SCHEDULED}


def test_a_job_that_finishes_early_ends_its_lease_and_settles_it(
    now: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    trader = demo()
    trader.setup(now=now)
    trader.prime(now=now)
    trader.step(now=now)  # the agents make the leases active and report a heartbeat each
    active = Lease.objects.filter(status=LeaseStatus.ACTIVE).count()
    monkeypatch.setattr(live, "END_CHANCE", 1.0)
    monkeypatch.setattr(live, "ORDERS_PER_STEP", (0,))
    monkeypatch.setattr(live, "CANCEL_CHANCE", 0.0)

    activity = trader.step(now=now + dt.timedelta(minutes=4))

    assert activity.ended == active
    assert Lease.objects.filter(status=LeaseStatus.ACTIVE).count() == 0
    assert Lease.objects.filter(status=LeaseStatus.CANCELLED).count() == active
    finals = Settlement.objects.filter(final=True)
    assert finals.count() == active
    assert all(s.charge > 0 for s in finals)  # the minutes delivered are paid for


def test_the_loop_settles_once_and_stops_when_told(
    now: dt.datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines: list[str] = []
    trader = demo(log=lines.append)
    trader.setup(now=now)
    trader.prime(now=now)
    trader.step(now=now)  # leases active, a heartbeat each
    stop = threading.Event()
    minute_later = now + dt.timedelta(minutes=1)

    def clock() -> dt.datetime:
        stop.set()  # one step, then the loop ends
        return minute_later

    monkeypatch.setattr(live, "SETTLE_AFTER", 0.0)
    trader.run(interval=0, stop=stop, clock=clock)

    live_leases = Lease.objects.filter(status=LeaseStatus.ACTIVE).count()
    assert Settlement.objects.filter(final=False).count() == live_leases > 0
    assert f"settled {live_leases} live leases" in lines


def test_the_command_prepares_the_first_round() -> None:
    out = StringIO()

    call_command("live_demo", "--prepare", "--seed", "3", stdout=out)

    rnd = ClearingRound.objects.get()
    assert out.getvalue().strip() == (
        f"live demo: round {rnd.number} cleared: {rnd.volume_units} units traded"
    )
    assert rnd.volume_units > 0
    assert not ApiKey.objects.filter(name=AGENT_KEY_NAME).exists()  # no agents without a URL


@override_settings(PRODUCTION=True)
def test_the_command_refuses_production() -> None:
    with pytest.raises(CommandError, match="DJANGO_ENV=production"):
        call_command("live_demo", "--prepare")

    assert not Organization.objects.exists()


@pytest.mark.parametrize(
    ("value", "enabled"),
    [(None, True), ("true", True), ("1", True), ("false", False), ("0", False), ("off", False)],
)
def test_demo_market_turns_off_with_the_environment(value: str | None, enabled: bool) -> None:
    environ = {} if value is None else {"DEMO_MARKET": value}

    assert demo_market_enabled(environ) is enabled
