"""A market scenario generated from a seed: providers' pools and buyers' jobs (pure; no ORM).

The story it tells is the seeds' complaint. Eastern data centres (Shanghai, Beijing, Guangdong,
Zhejiang) are expensive, brown and in demand, because that is where the buyers are; western ones
(Gansu, Inner Mongolia, Ningxia, Guizhou) are cheap, green and idle. Some buyers must stay close
(a latency limit), some keep their data in China (residency), some want green power, some ask for
standard compute (SCU) instead of a device; jobs run from one GPU for an hour to multi-node gang
jobs for two weeks. The same scenario feeds our market (through the real services) and the
baseline markets (``baselines``), so they are compared on the same supply and demand.

Every number is drawn from one ``random.Random(seed)`` in a fixed order: the same seed and sizes
give the same scenario, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from pathlib import Path

from marketplace.models.trading import LatencyTier
from marketplace.trading.eligibility import Demand, Location, Supply, exclusion

# Rounds are one hour; the simulated clock starts on a Monday at midnight UTC, in the future so
# that a live exchange's beat never mistakes the simulation's holds for its own.
EPOCH = dt.datetime(2030, 1, 7, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
CENT = Decimal("0.01")
TFLOPS_PER_PFLOPS = Decimal(1000)
CATALOG = Path(__file__).resolve().parents[2] / "marketplace" / "fixtures" / "catalog.json"


@dataclass(frozen=True)
class Region:
    code: str
    country: str
    city: str
    zone: str  # "east", "west" or "abroad"
    jurisdiction: str


REGIONS = (
    Region("CN-SH", "CN", "Shanghai", "east", "CN"),
    Region("CN-BJ", "CN", "Beijing", "east", "CN"),
    Region("CN-GD", "CN", "Shenzhen", "east", "CN"),
    Region("CN-ZJ", "CN", "Hangzhou", "east", "CN"),
    Region("CN-GS", "CN", "Qingyang", "west", "CN"),
    Region("CN-NM", "CN", "Ulanqab", "west", "CN"),
    Region("CN-NX", "CN", "Zhongwei", "west", "CN"),
    Region("CN-GZ", "CN", "Gui'an", "west", "CN"),
    Region("SG-01", "SG", "Singapore", "abroad", "SG"),
)
ZONES = ("east", "west", "abroad")
# Where providers are (share of pools) and what power and land cost there (× the device's
# reference price), with the PUE and renewable share ranges of the zone's sites.
PROVIDER_ZONES = {"east": Decimal("0.45"), "west": Decimal("0.47"), "abroad": Decimal("0.08")}
COST_FACTOR = {"east": Decimal("1.15"), "west": Decimal("0.80"), "abroad": Decimal("1.30")}
PUE_RANGE = {"east": (1.30, 1.55), "west": (1.12, 1.25), "abroad": (1.35, 1.50)}
GREEN_RANGE = {"east": (0.10, 0.35), "west": (0.45, 0.90), "abroad": (0.20, 0.40)}
# Where buyers are.
BUYER_ZONES = {"east": Decimal("0.75"), "west": Decimal("0.15"), "abroad": Decimal("0.10")}


@dataclass(frozen=True)
class DeviceClass:
    """A kind of node the scenario uses: device, devices per unit, units per pool, reference
    price per device-hour (CNY), share of pools, share of jobs, and the devices a job for it
    accepts."""

    slug: str
    devices_per_unit: int
    pool_units: tuple[int, int]
    reference_price: Decimal
    supply_share: float
    demand_share: float
    accepts: tuple[str, ...]


DEVICE_CLASSES = (
    DeviceClass(
        "nvidia-h800-sxm",
        8,
        (2, 12),
        Decimal("16.0"),
        0.18,
        0.26,
        ("nvidia-h800-sxm", "nvidia-h100-sxm"),
    ),
    DeviceClass(
        "nvidia-h100-sxm",
        8,
        (2, 8),
        Decimal("18.0"),
        0.07,
        0.06,
        ("nvidia-h100-sxm", "nvidia-h800-sxm"),
    ),
    DeviceClass(
        "nvidia-a800-sxm-80gb",
        8,
        (2, 12),
        Decimal("8.0"),
        0.15,
        0.14,
        ("nvidia-a800-sxm-80gb", "nvidia-a100-sxm-80gb"),
    ),
    DeviceClass("nvidia-h20", 8, (2, 12), Decimal("6.5"), 0.14, 0.12, ("nvidia-h20",)),
    DeviceClass(
        "huawei-ascend-910b", 8, (2, 12), Decimal("7.0"), 0.16, 0.14, ("huawei-ascend-910b",)
    ),
    DeviceClass("nvidia-l40s", 4, (2, 16), Decimal("4.5"), 0.10, 0.10, ("nvidia-l40s",)),
    DeviceClass(
        "nvidia-geforce-rtx-4090",
        1,
        (8, 48),
        Decimal("2.2"),
        0.20,
        0.18,
        ("nvidia-geforce-rtx-4090",),
    ),
)
QUANTITIES = ((1, 0.50), (2, 0.20), (4, 0.15), (8, 0.10), (16, 0.05))
DURATIONS = (
    (1, 10),
    (2, 10),
    (4, 10),
    (8, 10),
    (12, 8),
    (24, 14),
    (48, 10),
    (72, 10),
    (168, 10),
    (336, 8),
)
PATIENCE = ((0, 20), (1, 10), (2, 10), (3, 10), (6, 15), (12, 15), (24, 12), (48, 8))


@dataclass(frozen=True)
class Pool:
    index: int
    provider: int
    region: Region
    device: str
    devices_per_unit: int
    units: int
    cost: Decimal  # the provider's ask: per unit-hour, in CNY
    pue: Decimal
    renewable_share: Decimal
    verified: bool
    scu_per_unit: Decimal
    memory_gb_per_unit: Decimal

    @property
    def zone(self) -> str:
        return self.region.zone


@dataclass(frozen=True)
class Buyer:
    index: int
    location: Location
    zone: str


@dataclass(frozen=True)
class Job:
    """One order: what a buyer wants, from which round, for how long, and what it is worth.

    ``value`` is the buyer's true value per unit-hour (``scu`` False) or per SCU-hour (``scu``
    True); every market in the comparison lets the buyer pay at most that. ``reference_scu`` is
    the SCU of one unit of the device the buyer had in mind (1 for SCU jobs): demand is counted
    in SCU-hours through it."""

    index: int
    buyer: int
    arrival: int
    scu: bool
    quantity: Decimal
    devices: tuple[str, ...]
    duration_hours: int
    patience: int
    value: Decimal
    reference_scu: Decimal
    allowed_jurisdictions: tuple[str, ...] = ()
    max_latency_tier: int | None = None
    min_renewable_share: Decimal | None = None
    verified_only: bool = False
    gang: bool = False  # all or none, in one pool

    @property
    def requested_scu_hours(self) -> Decimal:
        return self.quantity * self.reference_scu * self.duration_hours

    def value_per_unit_hour(self, pool: Pool) -> Decimal:
        return self.value * pool.scu_per_unit if self.scu else self.value


@dataclass(frozen=True)
class Scenario:
    seed: int
    rounds: int
    providers: int
    buyers: tuple[Buyer, ...]
    pools: tuple[Pool, ...]
    jobs: tuple[Job, ...]

    @property
    def offered_unit_hours(self) -> int:
        return sum(p.units for p in self.pools) * self.rounds

    def compatible(self, job: Job, pool: Pool) -> bool:
        """The exchange's own rule (``compat.exclusion``) on everything but time and free units."""
        return exclusion(demand_of(self.buyers[job.buyer], job), supply_of(pool)) is None

    def eligible(self) -> dict[int, list[Pool]]:
        """job index → the pools it may use. Jobs alike in what ``compatible`` looks at share one
        check per pool (a few hundred kinds of job instead of thousands)."""
        by_kind: dict[tuple[object, ...], list[Pool]] = {}
        found: dict[int, list[Pool]] = {}
        for job in self.jobs:
            buyer = self.buyers[job.buyer]
            kind = (
                job.devices,
                job.duration_hours,
                job.allowed_jurisdictions,
                job.max_latency_tier,
                buyer.location if job.max_latency_tier else None,
                job.min_renewable_share,
                job.verified_only,
            )
            if kind not in by_kind:
                by_kind[kind] = [p for p in self.pools if self.compatible(job, p)]
            found[job.index] = by_kind[kind]
        return found


def round_start(number: int) -> dt.datetime:
    return EPOCH + number * HOUR


def load_devices(path: Path = CATALOG) -> dict[str, tuple[Decimal, Decimal]]:
    """slug → (memory GB, dense BF16 TFLOPS) from the catalog fixture (what the database holds)."""
    found: dict[str, tuple[Decimal, Decimal]] = {}
    for row in json.loads(path.read_text()):
        fields = row["fields"]
        found[fields["slug"]] = (Decimal(fields["memory_gb"]), Decimal(fields["bf16_tflops"]))
    return found


def _pick(
    rng: random.Random, weighted: tuple[tuple[int, float], ...] | tuple[tuple[int, int], ...]
) -> int:
    values = [v for v, _ in weighted]
    weights = [w for _, w in weighted]
    return rng.choices(values, weights=weights)[0]


def _zone(rng: random.Random, shares: dict[str, Decimal]) -> str:
    return rng.choices(list(shares), weights=[float(s) for s in shares.values()])[0]


def _money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_EVEN)


def _share(low: float, high: float, rng: random.Random) -> Decimal:
    return Decimal(str(round(rng.uniform(low, high), 2)))


def generate(
    *,
    seed: int,
    providers: int = 200,
    buyers: int = 2000,
    rounds: int = 500,
    demand: float = 1.0,
) -> Scenario:
    """Pools for ``providers`` providers (one site each, one or two pools), ``buyers`` buyers,
    and jobs arriving over ``rounds`` one-hour rounds until the requested unit-hours reach
    ``demand`` × the offered unit-hours."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not security
    devices = load_devices()
    by_zone = {zone: [r for r in REGIONS if r.zone == zone] for zone in ZONES}
    pools: list[Pool] = []
    for provider in range(providers):
        zone = _zone(rng, PROVIDER_ZONES)
        region = rng.choice(by_zone[zone])
        pue = _share(*PUE_RANGE[zone], rng)
        green = _share(*GREEN_RANGE[zone], rng)
        verified = rng.random() < 0.75
        for _ in range(1 if rng.random() < 0.55 else 2):
            kind = rng.choices(DEVICE_CLASSES, weights=[d.supply_share for d in DEVICE_CLASSES])[0]
            memory, tflops = devices[kind.slug]
            cost = kind.reference_price * kind.devices_per_unit * COST_FACTOR[zone]
            pools.append(
                Pool(
                    index=len(pools),
                    provider=provider,
                    region=region,
                    device=kind.slug,
                    devices_per_unit=kind.devices_per_unit,
                    units=rng.randint(*kind.pool_units),
                    cost=_money(cost * Decimal(str(round(rng.uniform(0.92, 1.08), 3)))),
                    pue=pue,
                    renewable_share=green,
                    verified=verified,
                    scu_per_unit=tflops * kind.devices_per_unit / TFLOPS_PER_PFLOPS,
                    memory_gb_per_unit=memory * kind.devices_per_unit,
                )
            )
    people: list[Buyer] = []
    for index in range(buyers):
        zone = _zone(rng, BUYER_ZONES)
        region = rng.choice(by_zone[zone])
        people.append(Buyer(index, Location(region.country, region.code, region.city), zone))
    scenario = Scenario(seed, rounds, providers, tuple(people), tuple(pools), ())
    target = demand * scenario.offered_unit_hours
    jobs: list[Job] = []
    requested = 0.0
    while requested < target:
        job = _job(rng, len(jobs), people, devices, rounds)
        jobs.append(job)
        units = float(job.quantity) if not job.scu else float(job.quantity / job.reference_scu)
        requested += units * job.duration_hours
    jobs.sort(key=lambda j: (j.arrival, j.index))
    jobs = [_renumber(j, i) for i, j in enumerate(jobs)]
    return Scenario(seed, rounds, providers, tuple(people), tuple(pools), tuple(jobs))


def _renumber(job: Job, index: int) -> Job:
    return Job(**{**job.__dict__, "index": index})


def _job(
    rng: random.Random,
    index: int,
    people: list[Buyer],
    devices: dict[str, tuple[Decimal, Decimal]],
    rounds: int,
) -> Job:
    buyer = rng.choice(people)
    kind = rng.choices(DEVICE_CLASSES, weights=[d.demand_share for d in DEVICE_CLASSES])[0]
    scu_per_unit = devices[kind.slug][1] * kind.devices_per_unit / TFLOPS_PER_PFLOPS
    quantity = _pick(rng, QUANTITIES)
    duration = _pick(rng, DURATIONS)
    # Price sensitivity: what a unit-hour is worth to this buyer, around the reference price
    # (log-normal; eastern buyers who must stay close value it more).
    worth = kind.reference_price * kind.devices_per_unit
    factor = math.exp(rng.gauss(0.05, 0.35))
    jurisdictions: tuple[str, ...] = ()
    latency: int | None = None
    green: Decimal | None = None
    draw = rng.random()
    if buyer.zone == "east" and draw < 0.30:
        latency = int(LatencyTier.REGIONAL)
        factor *= 1.25
    elif draw < 0.50:
        jurisdictions = (buyer.location.country,)
    elif draw < 0.60:
        green = Decimal("0.50")
    verified_only = rng.random() < 0.10
    scu = rng.random() < 0.15 and latency is None
    gang = not scu and quantity >= 4 and rng.random() < 0.5
    arrival = rng.randrange(rounds)
    patience = _pick(rng, PATIENCE)
    if scu:  # standard compute: any accelerator, priced per SCU-hour
        # Rounded up: exactly ``quantity`` units of the device the buyer had in mind fit.
        amount = (Decimal(quantity) * scu_per_unit).quantize(
            Decimal("0.001"), rounding=ROUND_CEILING
        )
        value = _money(worth / scu_per_unit * Decimal(str(factor)))
        devices_: tuple[str, ...] = ()
        quantity_, reference = max(amount, Decimal("0.001")), Decimal(1)
    else:
        value = _money(worth * Decimal(str(factor)))
        quantity_, devices_, reference = Decimal(quantity), kind.accepts, scu_per_unit
    return Job(
        index=index,
        buyer=buyer.index,
        arrival=arrival,
        scu=scu,
        quantity=quantity_,
        devices=devices_,
        duration_hours=duration,
        patience=patience,
        value=max(value, CENT),
        reference_scu=reference,
        allowed_jurisdictions=jurisdictions,
        max_latency_tier=latency,
        min_renewable_share=green,
        verified_only=verified_only,
        gang=gang,
    )


def supply_of(pool: Pool) -> Supply:
    """The pool as ``compat`` sees it, with time and free units out of the picture."""
    far = EPOCH + dt.timedelta(days=3650)
    return Supply(
        offer_id=pool.index,
        pool_id=pool.index,
        site_id=pool.index,
        device_slug=pool.device,
        memory_gb_per_unit=pool.memory_gb_per_unit,
        scu_per_unit=pool.scu_per_unit,
        location=Location(pool.region.country, pool.region.code, pool.region.city),
        jurisdiction=pool.region.jurisdiction,
        pue=pool.pue,
        renewable_share=pool.renewable_share,
        verified=pool.verified,
        free_units=1,
        min_price=pool.cost,
        available_from=EPOCH,
        available_until=far,
        min_lease_hours=1,
        max_lease_hours=720,
    )


def demand_of(buyer: Buyer, job: Job) -> Demand:
    return Demand(
        device_slugs=job.devices,
        min_memory_gb=None,
        min_scu_per_unit=None,
        duration_hours=job.duration_hours,
        earliest_start=round_start(job.arrival),
        latest_start=round_start(job.arrival + job.patience),
        allowed_regions=(),
        allowed_jurisdictions=job.allowed_jurisdictions,
        location=buyer.location,
        max_latency_tier=job.max_latency_tier,
        min_renewable_share=job.min_renewable_share,
        max_pue=None,
        verified_only=job.verified_only,
    )
