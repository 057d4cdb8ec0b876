"""The markets people use today, run on a scenario's supply and demand (pure; no ORM).

Both serve orders one at a time, in arrival order, every hour: an order not (fully) served waits
and tries again each round until its latest start, like an order in our book. Gang jobs take all
their units from one pool or nothing; other orders may take units from several pools. Eligibility
is the exchange's own rule (``Scenario.compatible``), and an order never pays more than its value.

- **Posted price, first come first served** (Vast-style): each provider lists its pool at a fixed
  price, its cost marked up by ``markup`` (hosts set list prices by hand and leave them); the
  buyer takes the cheapest listings it can afford, first come first served.
- **Pay-as-bid reverse auction** (Akash-style): for each order every eligible provider with free
  units bids its cost marked up by ``margin + slope × utilization`` of its pool at that hour (the
  busier, the dearer); the buyer takes the lowest bids it can afford and pays what was bid.

The markups are behavioural assumptions, not laws: with ``markup=0`` the posted-price market
trades at cost and what remains between it and ours is the allocation alone (first come first
served against welfare-maximizing batches). The report shows that sensitivity too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

import numpy as np

from matching.simulation.scenario import CENT, Job, Pool, Scenario

DEFAULT_MARKUP = Decimal("0.25")
DEFAULT_MARGIN = Decimal("0.10")
DEFAULT_SLOPE = Decimal("0.40")
LONGEST = 720 + 48  # hours a lease placed in the last round may still run, and then some


@dataclass(frozen=True, order=True)
class Allocation:
    """Units of one pool leased to one job from round ``start`` for ``hours``, at ``price`` per
    unit-hour (what the buyer pays and the provider receives, before fees)."""

    job: int
    pool: int
    units: int
    start: int
    hours: int
    price: Decimal


# (pool, round, free units now) → price per unit-hour the pool asks of this order
Pricing = Callable[[Pool, int, int], Decimal]


def posted_price(scenario: Scenario, *, markup: Decimal = DEFAULT_MARKUP) -> list[Allocation]:
    prices = {p.index: _up(p.cost * (1 + markup)) for p in scenario.pools}
    return _serve(scenario, lambda pool, _round, _free: prices[pool.index])


def pay_as_bid(
    scenario: Scenario, *, margin: Decimal = DEFAULT_MARGIN, slope: Decimal = DEFAULT_SLOPE
) -> list[Allocation]:
    def bid(pool: Pool, _round: int, free: int) -> Decimal:
        utilization = Decimal(pool.units - free) / pool.units
        return _up(pool.cost * (1 + margin + slope * utilization))

    return _serve(scenario, bid)


def _up(price: Decimal) -> Decimal:
    return price.quantize(CENT, rounding="ROUND_CEILING")


def _serve(scenario: Scenario, pricing: Pricing) -> list[Allocation]:
    pools = scenario.pools
    free = np.array([[p.units] * (scenario.rounds + LONGEST) for p in pools], dtype=np.int32)
    eligible = scenario.eligible()
    remaining = {job.index: job.quantity for job in scenario.jobs}
    allocations: list[Allocation] = []
    waiting: list[Job] = []
    arrivals = iter(scenario.jobs)
    upcoming = next(arrivals, None)
    for now in range(scenario.rounds):
        while upcoming is not None and upcoming.arrival == now:
            waiting.append(upcoming)
            upcoming = next(arrivals, None)
        still: list[Job] = []
        for job in waiting:  # first come, first served
            taken = _fill(job, eligible[job.index], remaining[job.index], now, free, pricing)
            for pool, units, price in taken:
                allocations.append(
                    Allocation(job.index, pool.index, units, now, job.duration_hours, price)
                )
                free[pool.index, now : now + job.duration_hours] -= units
                remaining[job.index] -= units * (pool.scu_per_unit if job.scu else 1)
            if remaining[job.index] > 0 and now < job.arrival + job.patience:
                still.append(job)
        waiting = still
    return allocations


def _fill(
    job: Job,
    eligible: list[Pool],
    remaining: Decimal,
    now: int,
    free: np.ndarray,
    pricing: Pricing,
) -> list[tuple[Pool, int, Decimal]]:
    """What ``job`` takes this round: the cheapest affordable units first (per SCU for SCU
    jobs), all from one pool for a gang job."""
    window = slice(now, now + job.duration_hours)
    quotes: list[tuple[Decimal, int, Pool, int, Decimal]] = []
    for pool in eligible:
        available = int(free[pool.index, window].min())
        if available <= 0:
            continue
        price = pricing(pool, now, int(free[pool.index, now]))
        per = price / pool.scu_per_unit if job.scu else price
        if per > job.value:
            continue
        quotes.append((per, pool.index, pool, available, price))
    quotes.sort(key=lambda q: (q[0], q[1]))
    if job.gang:
        for _per, _index, pool, available, price in quotes:
            if available >= remaining:
                return [(pool, int(remaining), price)]
        return []
    taken: list[tuple[Pool, int, Decimal]] = []
    for _per, _index, pool, available, price in quotes:
        if remaining <= 0:
            break
        wanted = (
            (remaining / pool.scu_per_unit).to_integral_value(ROUND_FLOOR) if job.scu else remaining
        )
        units = min(available, int(wanted))
        if units > 0:
            taken.append((pool, units, price))
            remaining -= units * (pool.scu_per_unit if job.scu else 1)
    return taken
