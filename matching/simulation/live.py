"""The live demo behind `make run`: simulated providers and buyers trading on the real exchange.

Six providers (the demo provider and five more) list pools in eastern and western Chinese regions
(west cheaper and greener, as in ``scenario``) and six buyers (the demo buyer and five more) trade
in market ``cny`` in real time, through the same services the portal and the API call:

- ``setup`` (idempotent: a second `make run` reuses ``var/``) creates the simulated organizations,
  their sites, pools and an active offer covering the next 30 days at a regional cost price, and
  tops buyers' wallets up in the ledger (an adjustment from the platform);
- ``prime`` places a first batch of orders priced to trade and clears the current round at once,
  so that leases exist within seconds of start; after that Celery beat clears a round every
  minute (``clear_round`` is once per slot under the market's lock: beat and the demo never clear
  the same slot twice);
- every ``step`` buyers place a few orders (1–8 units for 1–3 hours, limits around the asks, so
  that some trade, some wait in the book and some are priced out; some with a latency, residency
  or green-power constraint), now and then cancel an open one or end a lease early (their job
  finished: this frees supply and settles the lease finally), and each provider's reference agent
  (``marketplace.client.agent.ProviderAgent``, over real HTTP) acknowledges new leases, makes them
  ready and reports heartbeats and usage.

Settlement is beat's job; ``run`` also settles once, ``SETTLE_AFTER`` into the run, so that the
first settlements show within a minute of start even when beat's first pass comes later.

What the traders do is drawn from one ``random.Random(seed)`` (each agent has its own, derived
from the seed). Nothing here runs in production: the command refuses.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from io import StringIO

from django.core.management import call_command
from django.db import close_old_connections, transaction

from ledger import queries as ledger_queries
from ledger import services as ledger
from ledger.models import Purpose
from marketplace.accounts import services as accounts_services
from marketplace.client.agent import (
    AgentError,
    ProviderAgent,
    Transport,
    urllib_transport,
)
from marketplace.core import owners
from marketplace.core.access import Principal
from marketplace.core.errors import DomainError
from marketplace.leases import services as leases_services
from marketplace.models import (
    OPEN_ORDER_STATUSES,
    ApiKey,
    KybStatus,
    LatencyTier,
    Lease,
    LeaseStatus,
    Market,
    Membership,
    Offer,
    OfferStatus,
    Order,
    Organization,
    Pool,
    Role,
    Scope,
    Site,
    User,
)
from marketplace.trading import orders, supply
from marketplace.trading.eligibility import Location
from matching import services as matching
from matching.simulation.run import deposit
from matching.simulation.scenario import (
    COST_FACTOR,
    DEVICE_CLASSES,
    REGIONS,
    DeviceClass,
    Region,
)

MARKET = "cny"
AGENT_KEY_NAME = "live demo agent"
OWNER_DOMAIN = "demo.suanli.test"
PROVIDER_SCOPES = frozenset({Scope.READ, Scope.TRADE, Scope.PROVIDER_AGENT})
BUYER_SCOPES = frozenset({Scope.READ, Scope.TRADE})
OFFER_DAYS = 30
OFFER_RENEW_BEFORE = dt.timedelta(days=7)  # a restart renews an offer with less than this left
WALLET_LOW = 20_000_000  # 200,000.00 CNY in fen: below this a buyer's wallet is topped up …
WALLET_TOP_UP = 100_000_000  # … by 1,000,000.00 CNY
SETTLE_AFTER = 30.0  # seconds into a run: one settlement pass of our own (see the docstring)
ORDERS_PER_STEP = (0, 1, 1, 2)  # drawn uniformly each step
CANCEL_CHANCE = 0.15  # per step: cancel one open order
END_CHANCE = 0.04  # per step and lease: a lease older than END_MIN_AGE ends early
END_MIN_AGE = dt.timedelta(minutes=3)
DEVICE_DEMAND = {  # which devices buyers ask for
    "nvidia-h800-sxm": 0.35,
    "huawei-ascend-910b": 0.25,
    "nvidia-geforce-rtx-4090": 0.40,
}
NODE_QUANTITIES = ((1, 50), (2, 30), (4, 15), (8, 5))  # units of an 8-device node


@dataclass(frozen=True)
class PoolSpec:
    name: str
    device: str
    units: int
    jitter: Decimal  # this pool's ask × the regional cost price


@dataclass(frozen=True)
class ProviderSpec:
    registration: str
    legal_name: str
    region: str
    site: str
    pue: Decimal
    renewable_share: Decimal
    pools: tuple[PoolSpec, ...]


@dataclass(frozen=True)
class BuyerSpec:
    registration: str
    legal_name: str
    region: str


# The first of each is the organization `seed_demo` creates for the demo logins.
PROVIDERS = (
    ProviderSpec(
        "DEMO-PROVIDER-001",
        "Gansu Green Compute Co., Ltd.",
        "CN-GS",
        "Qingyang 1",
        Decimal("1.15"),
        Decimal("0.82"),
        (
            PoolSpec("H800 nodes", "nvidia-h800-sxm", 8, Decimal("1.00")),
            PoolSpec("RTX 4090 farm", "nvidia-geforce-rtx-4090", 32, Decimal("0.98")),
        ),
    ),
    ProviderSpec(
        "LIVE-P001",
        "Lingang Intelligent Computing Center",
        "CN-SH",
        "Lingang A",
        Decimal("1.42"),
        Decimal("0.18"),
        (
            PoolSpec("H800 nodes", "nvidia-h800-sxm", 6, Decimal("1.03")),
            PoolSpec("Ascend 910B nodes", "huawei-ascend-910b", 6, Decimal("1.01")),
        ),
    ),
    ProviderSpec(
        "LIVE-P002",
        "Yizhuang AI Cloud Ltd.",
        "CN-BJ",
        "Yizhuang 2",
        Decimal("1.38"),
        Decimal("0.22"),
        (PoolSpec("RTX 4090 racks", "nvidia-geforce-rtx-4090", 24, Decimal("1.02")),),
    ),
    ProviderSpec(
        "LIVE-P003",
        "Ulanqab Wind Compute Co.",
        "CN-NM",
        "Jining",
        Decimal("1.16"),
        Decimal("0.76"),
        (
            PoolSpec("Ascend 910B nodes", "huawei-ascend-910b", 8, Decimal("0.97")),
            PoolSpec("H800 nodes", "nvidia-h800-sxm", 6, Decimal("0.96")),
        ),
    ),
    ProviderSpec(
        "LIVE-P004",
        "Zhongwei Desert Data Park",
        "CN-NX",
        "Zhongwei 3",
        Decimal("1.20"),
        Decimal("0.64"),
        (PoolSpec("RTX 4090 hall", "nvidia-geforce-rtx-4090", 32, Decimal("1.01")),),
    ),
    ProviderSpec(
        "LIVE-P005",
        "Shenzhen Bay Compute Ltd.",
        "CN-GD",
        "Nanshan",
        Decimal("1.47"),
        Decimal("0.12"),
        (
            PoolSpec("H800 nodes", "nvidia-h800-sxm", 4, Decimal("1.05")),
            PoolSpec("RTX 4090 racks", "nvidia-geforce-rtx-4090", 16, Decimal("1.04")),
        ),
    ),
)
BUYERS = (
    BuyerSpec("DEMO-BUYER-001", "Shanghai Model Works Ltd.", "CN-SH"),
    BuyerSpec("LIVE-B001", "Beijing Vision Lab Ltd.", "CN-BJ"),
    BuyerSpec("LIVE-B002", "Shenzhen Embodied AI Co.", "CN-GD"),
    BuyerSpec("LIVE-B003", "Hangzhou Language Studio", "CN-ZJ"),
    BuyerSpec("LIVE-B004", "Shanghai Quant Research", "CN-SH"),
    BuyerSpec("LIVE-B005", "Gui'an Medical Imaging", "CN-GZ"),
)


@dataclass
class Trader:
    """A simulated organization and how it acts."""

    principal: Principal
    location: Location
    agent: ProviderAgent | None = None

    @property
    def organization(self) -> Organization:
        return self.principal.organization


@dataclass
class Activity:
    """What one step did."""

    placed: int = 0
    refused: int = 0
    cancelled: int = 0
    ended: int = 0
    provisioned: int = 0
    events: int = 0
    agents_down: int = 0

    @property
    def notable(self) -> bool:
        """Worth a line in the log (orders and heartbeats come every step)."""
        return bool(self.provisioned or self.ended or self.cancelled or self.refused)

    def __str__(self) -> str:
        return (
            f"orders placed={self.placed} refused={self.refused} cancelled={self.cancelled}; "
            f"leases provisioned={self.provisioned} ended early={self.ended}; "
            f"events accepted={self.events}"
        )


@dataclass
class LiveDemo:
    """The simulated traders of one run. ``url`` is the exchange the providers' agents call."""

    url: str
    seed: int
    transport: Transport = urllib_transport
    log: Callable[[str], None] = print
    rng: random.Random = field(init=False)
    market: Market = field(init=False)
    providers: list[Trader] = field(default_factory=list)
    buyers: list[Trader] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)  # noqa: S311 - a simulation, not security

    # ----------------------------------------------------------------------- setup

    def setup(self, *, now: dt.datetime, agents: bool = True) -> None:
        """Organizations, supply and wallets (idempotent), and, with ``agents``, a fresh
        provider-agent key per provider (its earlier demo keys revoked)."""
        market = Market.objects.filter(slug=MARKET).first()
        if market is None:
            raise LookupError(f"no market {MARKET!r}: load the fixtures first (make run does)")
        self.market = market
        call_command("seed_demo", stdout=StringIO())  # the demo logins' organizations
        operator = User.objects.get(email=f"operator@{OWNER_DOMAIN}")
        self.providers = [
            self._provider(spec, operator=operator, now=now, agents=agents) for spec in PROVIDERS
        ]
        self.buyers = [self._buyer(spec, operator=operator, now=now) for spec in BUYERS]
        for buyer in self.buyers:
            self._top_up(buyer.organization, now=now)

    def _organization(
        self,
        registration: str,
        legal_name: str,
        *,
        provider: bool,
        operator: User,
        now: dt.datetime,
    ) -> tuple[Organization, User]:
        """The organization and its owner, created approved on first use."""
        with transaction.atomic():
            organization, _created = Organization.objects.get_or_create(
                country="CN",
                registration_id=registration,
                defaults={
                    "legal_name": legal_name,
                    "is_provider": provider,
                    "is_buyer": not provider,
                    "kyb_status": KybStatus.APPROVED,
                    "kyb_decided_at": now,
                    "kyb_decided_by": operator,
                },
            )
            membership = (
                Membership.objects.filter(organization=organization, role=Role.OWNER)
                .select_related("user")
                .order_by("pk")
                .first()
            )
            if membership is None:  # a simulated organization: an owner who cannot log in
                email = f"{registration.lower()}@{OWNER_DOMAIN}"
                owner = User.objects.filter(email=email).first() or User.objects.create_user(
                    email, None, full_name=legal_name
                )
                membership = Membership.objects.create(
                    user=owner, organization=organization, role=Role.OWNER
                )
        return organization, membership.user

    def _provider(
        self, spec: ProviderSpec, *, operator: User, now: dt.datetime, agents: bool
    ) -> Trader:
        organization, owner = self._organization(
            spec.registration, spec.legal_name, provider=True, operator=operator, now=now
        )
        principal = Principal(
            organization=organization, scopes=PROVIDER_SCOPES, user=owner, role=Role.OWNER
        )
        region = _region(spec.region)
        site = Site.objects.filter(organization=organization, name=spec.site).first()
        if site is None:
            site = supply.create_site(
                principal=principal,
                request=supply.SiteRequest(
                    name=spec.site,
                    country=region.country,
                    region=region.code,
                    city=region.city,
                    jurisdiction=region.jurisdiction,
                    pue=spec.pue,
                    renewable_share=spec.renewable_share,
                    carbon_g_per_kwh=int(600 * (1 - spec.renewable_share)),
                ),
            )
        for pool_spec in spec.pools:
            self._supply(principal, site, pool_spec, zone=region.zone, now=now)
        trader = Trader(principal, Location(region.country, region.code, region.city))
        if agents:
            trader.agent = self._agent(spec, organization, owner, now=now)
        return trader

    def _supply(
        self, principal: Principal, site: Site, spec: PoolSpec, *, zone: str, now: dt.datetime
    ) -> None:
        """The pool, and an active offer of all its units until ``OFFER_DAYS`` from now unless
        one runs for at least ``OFFER_RENEW_BEFORE`` more (then a restart adds nothing)."""
        device = _device(spec.device)
        pool = Pool.objects.filter(site=site, name=spec.name).first()
        if pool is None:
            pool = supply.create_pool(
                principal=principal,
                request=supply.PoolRequest(
                    site=site,
                    name=spec.name,
                    device_model=spec.device,
                    units=spec.units,
                    devices_per_unit=device.devices_per_unit,
                    interconnect="nvlink" if device.devices_per_unit > 1 else "pcie",
                ),
            )
        offered_until = max(
            Offer.objects.filter(
                pool=pool,
                market=self.market,
                status__in=[OfferStatus.ACTIVE, OfferStatus.PAUSED],
                available_until__gt=now,
            ).values_list("available_until", flat=True),
            default=None,
        )
        if offered_until is not None and offered_until - now >= OFFER_RENEW_BEFORE:
            return
        # From the start of the hour, so that the current round's delivery start is covered;
        # back to back with an offer about to end (offers may not overlap beyond the pool).
        start = offered_until or now.replace(minute=0, second=0, microsecond=0)
        ask = device.reference_price * device.devices_per_unit * COST_FACTOR[zone] * spec.jitter
        supply.create_offer(
            principal=principal,
            request=supply.OfferRequest(
                market=self.market,
                pool=pool,
                units=pool.units,
                available_from=start,
                available_until=now + dt.timedelta(days=OFFER_DAYS),
                min_price=_price(ask, self.market),
            ),
            now=now,
        )

    def _agent(
        self, spec: ProviderSpec, organization: Organization, owner: User, *, now: dt.datetime
    ) -> ProviderAgent:
        """A fresh key per run: the secret of an earlier one is gone with its process."""
        for old in ApiKey.objects.filter(
            organization=organization, name=AGENT_KEY_NAME, revoked_at__isnull=True
        ):
            accounts_services.revoke_api_key(api_key=old, now=now)
        _key, secret = accounts_services.create_api_key(
            organization=organization,
            created_by=owner,
            name=AGENT_KEY_NAME,
            scopes=[Scope.PROVIDER_AGENT],
        )
        return ProviderAgent(
            url=self.url,
            key=secret,
            source=f"live-demo/{spec.registration.lower()}",
            transport=self.transport,
            rng=random.Random(f"{self.seed}:{spec.registration}"),  # noqa: S311 - simulation
            log=lambda line: self._agent_log(organization, line),
        )

    def _agent_log(self, organization: Organization, line: str) -> None:
        if not line.endswith(": active"):  # provisioned leases are counted in the step's line
            self.log(f"{organization.legal_name}: {line}")

    def _buyer(self, spec: BuyerSpec, *, operator: User, now: dt.datetime) -> Trader:
        organization, owner = self._organization(
            spec.registration, spec.legal_name, provider=False, operator=operator, now=now
        )
        region = _region(spec.region)
        return Trader(
            Principal(organization=organization, scopes=BUYER_SCOPES, user=owner, role=Role.OWNER),
            Location(region.country, region.code, region.city),
        )

    def _top_up(self, organization: Organization, *, now: dt.datetime) -> bool:
        """Deposit into the wallet when it runs low (an adjustment from the platform)."""
        currency = self.market.currency
        wallet = ledger.open_account(
            owner=owners.ledger_owner(organization),
            purpose=Purpose.WALLET,
            currency=currency,
            now=now,
        )
        if ledger_queries.balance(wallet.pk).available >= WALLET_LOW:
            return False
        (result,) = deposit(
            [organization],
            amount=WALLET_TOP_UP,
            currency=currency,
            ids=[uuid.uuid4()],
            metadata={"reason": "live demo deposit"},
            now=now,
        )
        return result == ledger.Result.OK

    # ----------------------------------------------------------------------- trading

    def prime(self, *, now: dt.datetime) -> matching.Outcome:
        """One order per buyer, priced to trade, then the current round cleared at once (a
        round beat cleared already is left as it is: the orders wait for the next)."""
        for buyer in self.buyers:
            self._place(buyer, now=now, eager=True)
        return matching.clear_round(market=self.market, now=now)

    def step(self, *, now: dt.datetime) -> Activity:
        """Buyers trade, then every provider's agent runs one cycle."""
        activity = Activity()
        for _ in range(self.rng.choice(ORDERS_PER_STEP)):
            buyer = self.rng.choice(self.buyers)
            self._top_up(buyer.organization, now=now)
            if self._place(buyer, now=now, eager=False):
                activity.placed += 1
            else:
                activity.refused += 1
        if self.rng.random() < CANCEL_CHANCE:
            activity.cancelled += self._cancel_one(now=now)
        activity.ended += self._end_some(now=now)
        for provider in self.providers:
            if provider.agent is None:
                continue
            try:
                counts = provider.agent.cycle()
            except (AgentError, OSError):  # the web server is not up (yet): next step
                activity.agents_down += 1
                continue
            activity.provisioned += counts["provisioned"]
            activity.events += counts["accepted"]
        return activity

    def _place(self, buyer: Trader, *, now: dt.datetime, eager: bool) -> bool:
        """A random order: a device the providers have, 1–8 units, 1–3 hours, from the current
        round's delivery start to 1–10 minutes from now, a limit around the asks (``eager``: at
        or above the regional reference, so it trades)."""
        rng = self.rng
        slug = rng.choices(list(DEVICE_DEMAND), weights=list(DEVICE_DEMAND.values()))[0]
        device = _device(slug)
        if device.devices_per_unit > 1:
            quantity = rng.choices(
                [units for units, _weight in NODE_QUANTITIES],
                weights=[weight for _units, weight in NODE_QUANTITIES],
            )[0]
        else:
            quantity = rng.randint(1, 8)
        # West asks at 0.8 × the reference, east at 1.15 ×: a limit below 0.8 × is priced out.
        factor = rng.uniform(1.2, 1.45) if eager else rng.uniform(0.7, 1.4)
        latency: int | None = None
        jurisdictions: list[str] = []
        green: Decimal | None = None
        draw = rng.random()
        if draw < 0.15 and not eager:  # must stay close: pays more for it
            latency = int(LatencyTier.REGIONAL)
            factor *= 1.15
        elif draw < 0.25:
            jurisdictions = ["CN"]  # data residency
        elif draw < 0.35:
            green = Decimal("0.50")  # green power: the west
        reference = device.reference_price * device.devices_per_unit
        request = orders.OrderRequest(
            market=self.market,
            quantity=Decimal(quantity),
            limit_price=_price(reference * Decimal(str(round(factor, 3))), self.market),
            duration_hours=rng.randint(1, 3),
            # "Now" to the round: the delivery start of the current round (a few seconds to a
            # minute ago, well inside the start grace), so the round clearing now may fill it.
            earliest_start=matching.slot_start(self.market, matching.slot(self.market, now)),
            latest_start=now + dt.timedelta(minutes=rng.randint(1, 10)),
            device_models=device.accepts,
            buyer_location=buyer.location,
            max_latency_tier=latency,
            allowed_jurisdictions=jurisdictions,
            min_renewable_share=green,
        )
        try:
            orders.place_order(principal=buyer.principal, request=request, now=now)
        except DomainError as error:
            self.log(f"{buyer.organization.legal_name}: order refused: {error}")
            return False
        return True

    def _cancel_one(self, *, now: dt.datetime) -> int:
        open_orders = list(
            Order.objects.filter(
                market=self.market,
                organization__in=[b.organization for b in self.buyers],
                status__in=OPEN_ORDER_STATUSES,
                cancel_requested_at__isnull=True,
            )
            .select_related("market", "organization")
            .order_by("-pk")[:20]
        )
        if not open_orders:
            return 0
        order = self.rng.choice(open_orders)
        buyer = next(b for b in self.buyers if b.organization.pk == order.organization_id)
        try:
            orders.cancel_order(principal=buyer.principal, order=order, now=now)
        except DomainError:  # filled or expired meanwhile
            return 0
        return 1

    def _end_some(self, *, now: dt.datetime) -> int:
        """Jobs finish early: each active lease past ``END_MIN_AGE`` ends with ``END_CHANCE``
        (the buyer pays for what was delivered; the units go back on offer)."""
        buyers = {b.organization.pk: b for b in self.buyers}
        ended = 0
        for lease in Lease.objects.filter(
            market=self.market,
            buyer__in=list(buyers),
            status=LeaseStatus.ACTIVE,
            starts_at__lte=now - END_MIN_AGE,
        ).order_by("pk"):
            if self.rng.random() >= END_CHANCE:
                continue
            actor = buyers[lease.buyer_id].principal.actor
            try:
                leases_services.end_lease(lease=lease, how="cancelled", actor=actor, now=now)
            except DomainError:  # ended meanwhile
                continue
            ended += 1
        return ended

    # ----------------------------------------------------------------------- the loop

    def run(
        self,
        *,
        interval: float,
        stop: threading.Event,
        clock: Callable[[], dt.datetime],
    ) -> None:
        """Step every ``interval`` seconds until ``stop`` is set; an error is logged and the
        next step tries again (the database or web server may be restarting)."""
        started = time.monotonic()
        settled = False
        waiting = False
        while not stop.is_set():
            begun = time.monotonic()
            try:
                activity = self.step(now=clock())
                if not settled and time.monotonic() - started >= SETTLE_AFTER:
                    settled = True
                    count = leases_services.settle_due(now=clock())
                    self.log(f"settled {count} live leases")
                if activity.agents_down and not waiting:
                    self.log(f"waiting for the exchange at {self.url}")
                waiting = bool(activity.agents_down)
                if activity.notable:
                    self.log(str(activity))
            except Exception as error:  # noqa: BLE001 - a demo keeps going; the error is shown
                self.log(f"step failed: {error!r}")
                close_old_connections()
            stop.wait(max(0.0, interval - (time.monotonic() - begun)))


def _region(code: str) -> Region:
    return next(r for r in REGIONS if r.code == code)


def _device(slug: str) -> DeviceClass:
    return next(d for d in DEVICE_CLASSES if d.slug == slug)


def _price(value: Decimal, market: Market) -> Decimal:
    """The nearest multiple of the market's tick."""
    ticks = (value / market.price_tick).to_integral_value(rounding=ROUND_HALF_EVEN)
    return max(ticks, Decimal(1)) * market.price_tick
