"""Run a scenario through the exchange's real services on an accelerated clock.

One market of its own (one-hour rounds, the CNY rules), providers and buyers as approved
organizations acting through the same service functions the portal, the API and the agent API
call: sites, pools and offers are posted, buyers' wallets funded, orders placed when their jobs
arrive (each holding its maximum cost in the ledger), every hour the matcher clears a round, the
providers' agents acknowledge and provision new leases and report one heartbeat per lease-hour
(a 60-minute span), leases end when due and settle every ``SETTLE_EVERY`` rounds. Nothing is
mocked: the ledger, the matcher and the certificate are the production code.

Each simulated hour, in order: heartbeats (every ``REPORT_EVERY`` hours, and for leases about to
end), leases due end (final settlement), periodic settlement, expired orders leave, new orders
arrive, the round clears, new leases start.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, Decimal

from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from ledger import services as ledger
from ledger import verify as ledger_verify
from ledger.models import Purpose
from marketplace.core import owners
from marketplace.core.access import Principal
from marketplace.leases import agent
from marketplace.leases import services as leases_services
from marketplace.models import (
    DeviceModel,
    FillPolicy,
    KybStatus,
    Lease,
    LeaseStatus,
    Market,
    Organization,
    Placement,
    Pool,
    QuantityKind,
    Role,
    Scope,
    User,
)
from marketplace.trading import orders as trading_orders
from marketplace.trading import supply
from matching import services as matching
from matching.simulation.baselines import Allocation
from matching.simulation.scenario import CENT, EPOCH, HOUR, Job, Scenario, round_start

SCOPES = frozenset({Scope.READ, Scope.TRADE, Scope.PROVIDER_AGENT})
WALLET = 10_000_000_000  # 100 million CNY per buyer, in fen: money never limits a simulated buyer
FLAKY_SHARE = 0.05  # providers whose agents lose heartbeats
FLAKY_LOSS = 0.03  # the share of lease-hours a flaky provider fails to report
REPORT_EVERY = 6  # hours between an agent's heartbeat reports
SETTLE_EVERY = 24  # hours between settlements (a multiple of REPORT_EVERY)


@dataclass
class Run:
    scenario: Scenario
    market: Market
    providers: list[Principal]
    buyers: list[Principal]
    pools: dict[int, int] = field(default_factory=dict)  # pool pk → scenario pool index
    orders: dict[int, int] = field(default_factory=dict)  # order pk → job index
    flaky: frozenset[int] = frozenset()
    reported_until: dt.datetime = EPOCH  # heartbeats are in for every lease-hour before this

    def allocations(self) -> list[Allocation]:
        rows = Lease.objects.filter(market=self.market).values_list(
            "order_id", "pool_id", "units", "starts_at", "duration_hours", "price"
        )
        return sorted(
            Allocation(
                self.orders[order],
                self.pools[pool],
                units,
                int((starts - EPOCH) / HOUR),
                hours,
                price,
            )
            for order, pool, units, starts, hours, price in rows
        )


def simulate(
    scenario: Scenario,
    *,
    tag: str,
    ask_markup: Decimal = Decimal(0),
    progress: Callable[[int], None] = lambda _round: None,
) -> Run:
    """Set the market up, run every round, settle what is due at the end."""
    run = setup(scenario, tag=tag, ask_markup=ask_markup)
    by_round: dict[int, list[Job]] = defaultdict(list)
    for job in scenario.jobs:
        by_round[job.arrival].append(job)
    rng = random.Random(scenario.seed)  # noqa: S311 - a simulation, not security
    for number in range(scenario.rounds):
        step(run, number, by_round[number], rng=rng, settle=number % SETTLE_EVERY == 0)
        progress(number)
    end = round_start(scenario.rounds)
    report_heartbeats(run, end, rng=rng, ending=False)
    leases_services.end_due_leases(now=end)
    leases_services.settle_due(now=end)
    return run


def setup(scenario: Scenario, *, tag: str, ask_markup: Decimal = Decimal(0)) -> Run:
    now = round_start(0)
    wanted = {p.device for p in scenario.pools}
    if DeviceModel.objects.filter(slug__in=wanted).count() < len(wanted):
        call_command("loaddata", "catalog", verbosity=0)  # a fresh database: the catalog first
    bot, _ = User.objects.get_or_create(
        email=f"simulator+{tag}@simulation.suanli.test", defaults={"full_name": "Simulator"}
    )
    with transaction.atomic():
        sim_market = Market.objects.create(
            slug=f"sim-{tag}"[:32],
            name=f"Simulation {tag}",
            currency="CNY",
            round_seconds=3600,
            fee_bps=300,
            buyer_fee_bps=0,
            sla_target=Decimal("0.995"),
            sla_credit_schedule=[["0.995", "0.10"], ["0.99", "0.25"], ["0.95", "1.00"]],
            horizon_hours=336,
            max_duration_hours=720,
        )
        providers = _organizations(scenario.providers, tag=tag, provider=True, by=bot)
        buyers = _organizations(len(scenario.buyers), tag=tag, provider=False, by=bot)
    run = Run(
        scenario,
        sim_market,
        [_principal(o, bot) for o in providers],
        [_principal(o, bot) for o in buyers],
    )
    _supply(run, now=now, markup=ask_markup)
    _fund(run, now=now)
    rng = random.Random(f"{scenario.seed}:flaky")  # noqa: S311 - a simulation, not security
    run.flaky = frozenset(i for i in range(scenario.providers) if rng.random() < FLAKY_SHARE)
    return run


def _organizations(count: int, *, tag: str, provider: bool, by: User) -> list[Organization]:
    side = "P" if provider else "B"
    decided = timezone.now()
    return Organization.objects.bulk_create(
        Organization(
            legal_name=f"Simulated {'provider' if provider else 'buyer'} {i + 1} ({tag})",
            country="CN",
            registration_id=f"SIM-{tag}-{side}{i + 1:05d}"[:64],
            is_provider=provider,
            is_buyer=not provider,
            kyb_status=KybStatus.APPROVED,
            kyb_decided_at=decided,
            kyb_decided_by=by,
        )
        for i in range(count)
    )


def _principal(organization: Organization, bot: User) -> Principal:
    return Principal(organization=organization, scopes=SCOPES, user=bot, role=Role.OWNER)


def _stable_uuid(tag: str, kind: str, index: int) -> uuid.UUID:
    """Ordered like ``index`` within a run: tie-breaks that look at ids see the scenario's order."""
    prefix = int.from_bytes(hashlib.sha256(f"{tag}:{kind}".encode()).digest()[:8], "big")
    return uuid.UUID(int=(prefix << 64) | index)


def _supply(run: Run, *, now: dt.datetime, markup: Decimal) -> None:
    scenario = run.scenario
    until = round_start(scenario.rounds) + dt.timedelta(hours=720 + 48)
    sites: dict[int, object] = {}
    for spec in scenario.pools:
        principal = run.providers[spec.provider]
        site = sites.get(spec.provider)
        if site is None:
            site = sites[spec.provider] = supply.create_site(
                principal=principal,
                request=supply.SiteRequest(
                    name=f"{spec.region.city} {spec.provider + 1}",
                    country=spec.region.country,
                    region=spec.region.code,
                    city=spec.region.city,
                    jurisdiction=spec.region.jurisdiction,
                    pue=spec.pue,
                    renewable_share=spec.renewable_share,
                    carbon_g_per_kwh=int(600 * (1 - spec.renewable_share)),
                ),
            )
        pool = supply.create_pool(
            principal=principal,
            request=supply.PoolRequest(
                site=site,  # type: ignore[arg-type]
                name=f"pool {spec.index + 1}",
                device_model=spec.device,
                units=spec.units,
                devices_per_unit=spec.devices_per_unit,
            ),
        )
        Pool.objects.filter(pk=pool.pk).update(
            verified=spec.verified, public_id=_stable_uuid(run.market.slug, "pool", spec.index)
        )
        run.pools[pool.pk] = spec.index
        supply.create_offer(
            principal=principal,
            request=supply.OfferRequest(
                market=run.market,
                pool=pool,
                units=spec.units,
                available_from=now,
                available_until=until,
                min_price=(spec.cost * (1 + markup)).quantize(CENT, rounding=ROUND_CEILING),
            ),
            now=now,
        )


def _fund(run: Run, *, now: dt.datetime) -> None:
    results = deposit(
        [b.organization for b in run.buyers],
        amount=WALLET,
        currency=run.market.currency,
        ids=[_stable_uuid(run.market.slug, "deposit", i) for i in range(len(run.buyers))],
        metadata={"simulation": run.market.slug},
        now=now,
    )
    assert all(r == ledger.Result.OK for r in results), results  # noqa: S101 - fresh accounts


def deposit(
    organizations: list[Organization],
    *,
    amount: int,
    currency: str,
    ids: list[uuid.UUID],
    metadata: dict[str, str],
    now: dt.datetime,
) -> list[ledger.Result]:
    """Put ``amount`` into each organization's wallet, one transfer each with its id from
    ``ids``: an adjustment from the platform, since Stripe deposits are not built yet."""
    keys = [ledger.AccountKey("platform", Purpose.ADJUSTMENT, currency)] + [
        ledger.AccountKey(owners.ledger_owner(o), Purpose.WALLET, currency) for o in organizations
    ]
    accounts = ledger.open_accounts(keys, now=now)
    return ledger.create_transfers(
        [
            ledger.NewTransfer(
                id=transfer_id,
                debit_account_id=accounts[keys[0]],
                credit_account_id=accounts[key],
                amount=amount,
                metadata=metadata,
            )
            for transfer_id, key in zip(ids, keys[1:], strict=True)
        ],
        now=now,
    )


def step(run: Run, number: int, arriving: list[Job], *, rng: random.Random, settle: bool) -> None:
    now = round_start(number)
    report_heartbeats(run, now, rng=rng, ending=number % REPORT_EVERY != 0)
    leases_services.end_due_leases(now=now)
    if settle:
        leases_services.settle_due(now=now)
    trading_orders.expire_orders(now=now)
    for job in arriving:
        _place(run, job, now=now)
    matching.clear_round(market=run.market, now=now)
    _provision(run, now=now)


def _place(run: Run, job: Job, *, now: dt.datetime) -> None:
    buyer = run.scenario.buyers[job.buyer]
    kind = QuantityKind.SCU if job.scu else QuantityKind.UNITS
    request = trading_orders.OrderRequest(
        market=run.market,
        quantity=job.quantity,
        limit_price=job.value,
        duration_hours=job.duration_hours,
        earliest_start=now,
        latest_start=now + job.patience * HOUR,
        quantity_kind=kind,
        price_per=kind,
        device_models=job.devices,
        allowed_jurisdictions=job.allowed_jurisdictions,
        buyer_location=buyer.location,
        max_latency_tier=job.max_latency_tier,
        min_renewable_share=job.min_renewable_share,
        verified_only=job.verified_only,
        placement=Placement.SAME_POOL if job.gang else Placement.ANY,
        fill=FillPolicy.ALL_OR_NONE if job.gang else FillPolicy.PARTIAL,
    )
    order = trading_orders.place_order(principal=run.buyers[job.buyer], request=request, now=now)
    run.orders[order.pk] = job.index


def _provision(run: Run, *, now: dt.datetime) -> None:
    """The providers' agents: every lease starting now is made ready with its access details
    (straight from ``scheduled``, which the agent API allows; the reference agent acknowledges
    first, which costs a transaction per lease and shows nothing here)."""
    starting = Lease.objects.filter(
        market=run.market, status=LeaseStatus.SCHEDULED, starts_at__lte=now
    ).order_by("pk")
    for lease in starting:
        principal = run.providers[run.scenario.pools[run.pools[lease.pool_id]].provider]
        agent.mark_ready(
            principal=principal,
            lease=lease,
            access={"ssh": f"ssh sim@{lease.public_id.hex[:12]}.simulation.suanli.test"},
            now=now,
        )


def report_heartbeats(run: Run, now: dt.datetime, *, rng: random.Random, ending: bool) -> None:
    """The agents' heartbeats, one per lease-hour (a 60-minute span), for the hours since the last
    report. Like batching agents, they report every ``REPORT_EVERY`` hours; ``ending`` reports
    only the leases that end by ``now`` (they must be counted before their final settlement).
    Flaky providers lose some lease-hours. Event ids are per lease-hour: a repeat is a duplicate.
    """
    since = run.reported_until
    live = Lease.objects.filter(
        market=run.market, status=LeaseStatus.ACTIVE, starts_at__lt=now, ends_at__gt=since
    )
    if ending:
        live = live.filter(ends_at__lte=now)
    batches: dict[int, list[agent.AgentEvent]] = defaultdict(list)
    # Not by pk: a round writes its leases in its orders' (random) public-id order, so pk order,
    # and with it which lease-hours the flaky draws below hit, would differ between runs.
    rows = live.order_by("starts_at", "pool_id", "order_id", "offer_id").values_list(
        "public_id", "pool_id", "units", "starts_at", "ends_at"
    )
    for public_id, pool_pk, units, starts_at, ends_at in rows:
        provider = run.scenario.pools[run.pools[pool_pk]].provider
        hour = max(starts_at, since)
        while hour < min(ends_at, now):
            if provider not in run.flaky or rng.random() >= FLAKY_LOSS:
                batches[provider].append(
                    agent.AgentEvent(
                        source="simulated-agent",
                        id=f"{public_id}:{hour:%Y%m%d%H}",
                        type="com.suanli.heartbeat",
                        subject=f"lease:{public_id}",
                        time=hour,
                        data={"units_up": units, "minutes": 60},
                    )
                )
            hour += HOUR
    for provider, events in sorted(batches.items()):
        for i in range(0, len(events), agent.MAX_BATCH):
            agent.record_events(
                principal=run.providers[provider], events=events[i : i + agent.MAX_BATCH], now=now
            )
    if not ending:
        run.reported_until = now


def conservation() -> dict[str, object]:
    """Seal whatever the ledger queued, then verify it: chain, checkpoints, Σ = 0 per currency,
    cached balances = entries."""
    real_now = timezone.now()
    while ledger.seal(now=real_now):
        pass
    report = ledger_verify.verify()
    return {"ok": report.ok, "problems": report.problems or []}


def books(run: Run) -> dict[str, object]:
    """The exchange's own record of the run: rounds and certificates, orders and leases by
    status, and what settlement moved (minor units)."""
    from django.db.models import Count, Sum

    from marketplace.models import ClearingRound, Order, OrderStatus, Settlement

    rounds = ClearingRound.objects.filter(market=run.market)
    settled = Settlement.objects.filter(lease__market=run.market).aggregate(
        charge=Sum("charge"),
        platform_fee=Sum("platform_fee"),
        sla_credit=Sum("sla_credit"),
        refund=Sum("refund"),
    )
    return {
        "rounds": rounds.count(),
        "rounds_with_certificate_violations": rounds.filter(certificate_ok=False).count(),
        "orders_by_status": dict(
            Order.objects.filter(market=run.market)
            .values_list("status")
            .annotate(n=Count("pk"))
            .order_by("status")
        ),
        "expired_orders_by_last_reason": dict(
            Order.objects.filter(market=run.market, status=OrderStatus.EXPIRED)
            .values_list("unfilled_reason")
            .annotate(n=Count("pk"))
            .order_by("unfilled_reason")
        ),
        "leases_by_status": dict(
            Lease.objects.filter(market=run.market)
            .values_list("status")
            .annotate(n=Count("pk"))
            .order_by("status")
        ),
        "settled_charges_fen": settled["charge"] or 0,
        "platform_fees_fen": settled["platform_fee"] or 0,
        "sla_credits_fen": settled["sla_credit"] or 0,
        "refunds_fen": settled["refund"] or 0,
    }
