"""The market simulator: the scenario, each baseline's rule, the yardstick, and a run through the
real services (same seed, same report)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from marketplace.models import Market, Organization
from marketplace.trading.eligibility import Location
from matching.management.commands.simulate import run_simulation
from matching.simulation import baselines, report, scenario
from matching.simulation import run as simulation
from matching.simulation.baselines import Allocation
from matching.simulation.scenario import REGIONS, Buyer, Job, Pool, Scenario

EAST, WEST = REGIONS[0], REGIONS[4]  # Shanghai, Gansu


def pool(index: int, *, units: int, cost: str, region: scenario.Region = WEST) -> Pool:
    return Pool(
        index=index,
        provider=index,
        region=region,
        device="nvidia-geforce-rtx-4090",
        devices_per_unit=1,
        units=units,
        cost=Decimal(cost),
        pue=Decimal("1.20"),
        renewable_share=Decimal("0.50"),
        verified=True,
        scu_per_unit=Decimal("0.1652"),
        memory_gb_per_unit=Decimal(24),
    )


def job(index: int, *, arrival: int, quantity: int, value: str, **changes: Any) -> Job:
    values: dict[str, Any] = {
        "index": index,
        "buyer": 0,
        "arrival": arrival,
        "scu": False,
        "quantity": Decimal(quantity),
        "devices": ("nvidia-geforce-rtx-4090",),
        "duration_hours": 2,
        "patience": 0,
        "value": Decimal(value),
        "reference_scu": Decimal("0.1652"),
    }
    values.update(changes)
    return Job(**values)


def world(pools: list[Pool], jobs: list[Job], *, rounds: int = 4) -> Scenario:
    buyer = Buyer(0, Location("CN", EAST.code, EAST.city), "east")
    return Scenario(1, rounds, len(pools), (buyer,), tuple(pools), tuple(jobs))


# --------------------------------------------------------------------------- the scenario


def test_the_same_seed_gives_the_same_scenario() -> None:
    first = scenario.generate(seed=3, providers=12, buyers=40, rounds=24)

    assert scenario.generate(seed=3, providers=12, buyers=40, rounds=24) == first
    assert scenario.generate(seed=4, providers=12, buyers=40, rounds=24) != first


def test_the_scenario_tells_the_east_west_story() -> None:
    generated = scenario.generate(seed=5, providers=200, buyers=500, rounds=48)
    east = [p for p in generated.pools if p.zone == "east"]
    west = [p for p in generated.pools if p.zone == "west"]
    per_device = {
        zone: {p.device: p.cost / p.devices_per_unit for p in pools}
        for zone, pools in (("east", east), ("west", west))
    }
    shared = set(per_device["east"]) & set(per_device["west"])

    assert shared
    assert all(per_device["west"][d] < per_device["east"][d] for d in shared)  # west is cheaper
    assert max(p.renewable_share for p in east) < min(p.renewable_share for p in west)
    buyers_east = sum(1 for b in generated.buyers if b.zone == "east")
    assert buyers_east > len(generated.buyers) / 2  # demand is in the east
    kinds = {
        "scu": any(j.scu for j in generated.jobs),
        "gang": any(j.gang for j in generated.jobs),
        "latency": any(j.max_latency_tier for j in generated.jobs),
        "residency": any(j.allowed_jurisdictions for j in generated.jobs),
        "weeks": any(j.duration_hours >= 168 for j in generated.jobs),
        "one_hour": any(j.duration_hours == 1 for j in generated.jobs),
    }
    assert all(kinds.values()), kinds


def test_a_latency_limit_keeps_an_eastern_job_in_its_region() -> None:
    near = job(0, arrival=0, quantity=1, value="5", max_latency_tier=2)
    here = world([pool(0, units=1, cost="1", region=EAST), pool(1, units=1, cost="1")], [near])

    assert [here.compatible(near, p) for p in here.pools] == [True, False]


# --------------------------------------------------------------------------- posted price


def test_posted_price_serves_first_come_first_served_at_the_list_price() -> None:
    here = world(
        [pool(0, units=2, cost="10.00")],
        [
            job(0, arrival=0, quantity=1, value="12.00"),  # below the list price 12.50
            job(1, arrival=0, quantity=2, value="20.00"),  # first in, takes both units
            job(2, arrival=1, quantity=1, value="100.00"),  # worth more, but nothing is left
        ],
    )

    leased = baselines.posted_price(here, markup=Decimal("0.25"))

    assert leased == [Allocation(1, 0, 2, 0, 2, Decimal("12.50"))]


def test_posted_price_buyers_take_the_cheapest_listings_and_wait_their_patience() -> None:
    here = world(
        [pool(0, units=1, cost="3.00"), pool(1, units=2, cost="2.00")],
        [
            job(0, arrival=0, quantity=2, value="9.00", duration_hours=1),
            job(1, arrival=0, quantity=2, value="9.00", patience=1),  # one now, one next hour
        ],
    )

    leased = baselines.posted_price(here, markup=Decimal(0))

    assert leased == [
        Allocation(0, 1, 2, 0, 1, Decimal("2.00")),
        Allocation(1, 0, 1, 0, 2, Decimal("3.00")),
        Allocation(1, 1, 1, 1, 2, Decimal("2.00")),
    ]


def test_a_gang_job_takes_one_pool_or_nothing() -> None:
    here = world(
        [pool(0, units=2, cost="1.00"), pool(1, units=2, cost="1.00")],
        [
            job(0, arrival=0, quantity=3, value="9.00", gang=True),
            job(1, arrival=0, quantity=3, value="9.00"),  # not a gang: 2 + 1
        ],
    )

    leased = baselines.posted_price(here, markup=Decimal(0))

    assert [(a.job, a.pool, a.units) for a in leased] == [(1, 0, 2), (1, 1, 1)]


# --------------------------------------------------------------------------- pay as bid


def test_pay_as_bid_takes_the_lowest_bid_and_pays_it_and_busier_pools_bid_higher() -> None:
    here = world(
        [pool(0, units=2, cost="10.00"), pool(1, units=4, cost="11.00")],
        [
            job(0, arrival=0, quantity=1, value="50.00"),
            job(1, arrival=0, quantity=1, value="50.00"),
        ],
    )

    leased = baselines.pay_as_bid(here, margin=Decimal("0.10"), slope=Decimal("0.40"))

    # Idle, pool 0 bids 10 × 1.10 = 11.00 and pool 1 12.10: the first job takes pool 0. Half
    # busy, pool 0 bids 10 × (1.10 + 0.40 × 0.5) = 13.00 and loses to pool 1's 12.10.
    assert leased == [
        Allocation(0, 0, 1, 0, 2, Decimal("11.00")),
        Allocation(1, 1, 1, 0, 2, Decimal("12.10")),
    ]


def test_pay_as_bid_never_charges_above_the_buyers_value() -> None:
    here = world([pool(0, units=1, cost="10.00")], [job(0, arrival=0, quantity=1, value="10.99")])

    assert baselines.pay_as_bid(here, margin=Decimal("0.10"), slope=Decimal(0)) == []


# --------------------------------------------------------------------------- the yardstick


def test_figures_measure_utilization_demand_served_and_gains() -> None:
    here = world(
        [pool(0, units=2, cost="1.00"), pool(1, units=2, cost="2.00", region=EAST)],
        [
            job(0, arrival=0, quantity=2, value="5.00", duration_hours=8),
            job(1, arrival=0, quantity=2, value="3.00"),
        ],
    )
    leases = [
        Allocation(0, 0, 2, 2, 8, Decimal("1.50")),
        Allocation(1, 1, 1, 0, 2, Decimal("2.50")),
    ]

    got = report.figures(here, leases)

    # 2 units × 2 of the 4 rounds + 1 unit × 2 rounds, of 4 units × 4 rounds offered.
    assert got["utilization"] == "0.3750"
    assert got["utilization_by_zone"] == {"east": "0.2500", "west": "0.5000"}
    # Job 0 wholly served, job 1 half: (16 + 2 × 0.5) unit-hours of 20, in SCU-hours alike.
    assert got["demand_served"] == "0.9000"
    # Job 0: (5 − 1) × 2 units × 2 hours in the window (8 in all); job 1: (3 − 2) × 1 × 2.
    assert got["gains_from_trade"] == "18.00"
    assert got["gains_from_trade_whole_leases"] == "66.00"
    assert got["buyer_payments"] == "29.00"
    assert got["east_to_west"] == "0.8889"  # the buyer is eastern: 16 of 18 unit-hours west
    assert got["hourly_utilization"] == [0.25, 0.25, 0.5, 0.5]


# --------------------------------------------------------------------------- the real services


@pytest.mark.django_db
def test_a_simulated_market_trades_through_the_real_services() -> None:
    generated = scenario.generate(seed=11, providers=8, buyers=30, rounds=24)

    run = simulation.simulate(generated, tag="t11")
    leased = run.allocations()

    assert leased
    for a in leased:
        j, p = generated.jobs[a.job], generated.pools[a.pool]
        assert generated.compatible(j, p)
        assert j.arrival <= a.start <= j.arrival + j.patience
        assert p.cost <= a.price <= j.value_per_unit_hour(p)  # individually rational
    for p in generated.pools:  # never more units leased than the pool has, at any hour
        for hour in range(generated.rounds + 800):
            busy = sum(
                a.units for a in leased if a.pool == p.index and a.start <= hour < a.start + a.hours
            )
            assert busy <= p.units
    books = simulation.books(run)
    assert books["rounds"] == 24
    assert books["rounds_with_certificate_violations"] == 0
    assert isinstance(books["settled_charges_fen"], int)
    assert books["settled_charges_fen"] > 0
    assert simulation.conservation() == {"ok": True, "problems": []}


@pytest.mark.django_db
def test_the_same_seed_gives_the_same_report() -> None:
    sizes = {"seed": 12, "providers": 6, "buyers": 20, "rounds": 16, "demand": 1.0}

    first = run_simulation(**sizes)  # type: ignore[arg-type]
    second = run_simulation(**sizes)  # type: ignore[arg-type]

    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)
    assert first["mechanisms"]["exchange"]["leases"] > 0


@pytest.mark.django_db
def test_the_command_writes_the_report(tmp_path: Path) -> None:
    call_command(
        "simulate",
        "--seed=2",
        "--providers=4",
        "--buyers=12",
        "--rounds=8",
        f"--out={tmp_path}",
        "--no-progress",
        stdout=open("/dev/null", "w"),  # noqa: SIM115 - the command's table is not under test
    )

    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["comparison.png", "report.json", "report.md", "utilization.png"]
    data = json.loads((tmp_path / "report.json").read_text())
    assert set(data["mechanisms"]) == set(report.MECHANISMS)
    assert (tmp_path / "utilization.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| Utilization of offered capacity |" in (tmp_path / "report.md").read_text()


@pytest.mark.django_db
@override_settings(PRODUCTION=True)
def test_the_command_refuses_production(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="DJANGO_ENV=production"):
        call_command("simulate", "--providers=2", "--buyers=2", "--rounds=2", f"--out={tmp_path}")

    assert (Market.objects.count(), Organization.objects.count()) == (0, 0)
    assert list(tmp_path.iterdir()) == []
