"""Concurrent writers: several OS processes hammer a few hot accounts with committed transfers.

Each batch locks every account it touches once, in id order, so concurrent batches queue up
instead of deadlocking; the totals must come out exactly as a serial replay of the same work.
Writers racing for the same hold or the same transfer id: exactly one wins, the others are told.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import multiprocessing.synchronize
import queue
import random
import time
import uuid
from dataclasses import dataclass, replace

import pytest
from django.db import connections

from ledger import services
from ledger.models import Account, Checkpoint, Kind, Purpose, Transfer
from ledger.services import NewTransfer, Result
from ledger.verify import verify

NOW = dt.datetime(2025, 3, 1, 9, 0, tzinfo=dt.UTC)
PROCESSES = 4
BATCHES_PER_PROCESS = 200
SEEDS = tuple(range(1, PROCESSES + 1))

Totals = tuple[int, int, int, int]  # debits_pending, debits_posted, credits_pending, credits_posted


# --------------------------------------------------------------------------- the work


def plan(seed: int, accounts: list[int]) -> list[list[NewTransfer]]:
    """One process's batches, the same every time for a seed: singles, small batches, holds and
    their captures or voids, between the hot accounts in random order."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible from the seed)
    counter = 0

    def new_id() -> uuid.UUID:
        nonlocal counter
        counter += 1
        return uuid.UUID(int=(seed << 64) | counter)

    def single() -> NewTransfer:
        debit, credit = rng.sample(accounts, 2)
        return NewTransfer(
            id=new_id(),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=rng.randint(1, 10_000),
        )

    batches: list[list[NewTransfer]] = []
    holds: list[NewTransfer] = []
    while len(batches) < BATCHES_PER_PROCESS:
        shape = rng.choice(["single", "single", "batch", "hold", "resolve"])
        if shape == "single":
            batches.append([single()])
        elif shape == "batch":
            batches.append([single() for _ in range(rng.randint(2, 4))])
        elif shape == "hold":
            hold = replace(single(), kind=Kind.PENDING)
            holds.append(hold)
            batches.append([hold])
        elif holds:  # post part or all of an open hold, or void it; accounts from the hold
            hold = holds.pop(rng.randrange(len(holds)))
            assert hold.amount is not None
            if rng.random() < 0.5:
                request = NewTransfer(id=new_id(), kind=Kind.VOID, pending_id=hold.id)
            else:
                amount = rng.choice([None, rng.randint(1, hold.amount)])
                request = NewTransfer(
                    id=new_id(), kind=Kind.POST, pending_id=hold.id, amount=amount
                )
            batches.append([request])
    return batches


def replay(seeds: tuple[int, ...], accounts: list[int]) -> tuple[dict[int, Totals], int]:
    """The totals the plans must produce, applied one after another; and how many transfers."""
    totals = {account: [0, 0, 0, 0] for account in accounts}
    pendings: dict[uuid.UUID, NewTransfer] = {}
    count = 0
    for seed in seeds:
        for batch in plan(seed, accounts):
            for request in batch:
                count += 1
                if request.kind in (Kind.SINGLE, Kind.PENDING):
                    assert request.debit_account_id and request.credit_account_id
                    assert request.amount is not None
                    debit = totals[request.debit_account_id]
                    credit = totals[request.credit_account_id]
                    offset = 0 if request.kind == Kind.PENDING else 1  # pending or posted
                    debit[offset] += request.amount
                    credit[2 + offset] += request.amount
                    if request.kind == Kind.PENDING:
                        pendings[request.id] = request
                else:
                    assert request.pending_id is not None
                    hold = pendings.pop(request.pending_id)
                    assert hold.debit_account_id and hold.credit_account_id
                    assert hold.amount is not None
                    debit = totals[hold.debit_account_id]
                    credit = totals[hold.credit_account_id]
                    debit[0] -= hold.amount
                    credit[2] -= hold.amount
                    if request.kind == Kind.POST:
                        posted = request.amount or hold.amount
                        debit[1] += posted
                        credit[3] += posted
    return {a: (t[0], t[1], t[2], t[3]) for a, t in totals.items()}, count


@dataclass(frozen=True)
class Report:
    seed: int
    codes: list[str]
    error: str | None
    began: float  # time.monotonic(), the same clock in every process
    ended: float


def writer(
    seed: int,
    work: list[list[NewTransfer]],
    start: multiprocessing.synchronize.Barrier,
    reports: multiprocessing.Queue[Report],
) -> None:
    """A child process: its own database connection, its batches, its result codes back."""
    codes: list[str] = []
    error = None
    began = ended = 0.0
    try:
        start.wait(timeout=30)  # all writers begin together, for the most contention
        began = time.monotonic()
        for batch in work:
            codes.extend(str(code) for code in services.create_transfers(batch, now=NOW))
        ended = time.monotonic()
    except Exception as exc:  # noqa: BLE001 (any failure, e.g. a deadlock, goes to the parent)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        connections.close_all()
        reports.put(Report(seed, codes, error, began, ended))
    if error is not None:
        raise SystemExit(1)


SEALER = 0  # the report key of the process that seals while the writers write


def sealer(
    start: multiprocessing.synchronize.Barrier,
    stop: multiprocessing.synchronize.Event,
    reports: multiprocessing.Queue[Report],
) -> None:
    """A child process sealing whatever has committed, over and over, until told to stop."""
    sealed = 0
    error = None
    began = ended = 0.0
    try:
        start.wait(timeout=30)
        began = time.monotonic()
        while not stop.is_set():
            sealed += services.seal(now=NOW)
            time.sleep(0.01)
        ended = time.monotonic()
    except Exception as exc:  # noqa: BLE001 (any failure goes to the parent)
        error = f"{type(exc).__name__}: {exc}"
    finally:
        connections.close_all()
        reports.put(Report(SEALER, [str(sealed)], error, began, ended))
    if error is not None:
        raise SystemExit(1)


def run_writers(
    work: dict[int, list[list[NewTransfer]]], *, with_sealer: bool = False
) -> tuple[dict[int, list[str]], int]:
    """Fork one writer per seed (and a sealer), all starting at once; assert each exited 0
    without an error and that they ran at the same time. Returns each writer's result codes, in
    its order, and how many transfers the sealer sealed meanwhile."""
    context = multiprocessing.get_context("fork")
    start = context.Barrier(len(work) + with_sealer)
    stop = context.Event()
    reports: multiprocessing.Queue[Report] = context.Queue()
    connections.close_all()  # children must open their own connections, not share this one
    children = {
        seed: context.Process(target=writer, args=(seed, batches, start, reports))
        for seed, batches in work.items()
    }
    if with_sealer:
        children[SEALER] = context.Process(target=sealer, args=(start, stop, reports))
    for child in children.values():
        child.start()
    received: dict[int, Report] = {}
    try:
        while not set(work) <= set(received):
            report = reports.get(timeout=90)
            received[report.seed] = report
        stop.set()
        while set(received) != set(children):
            report = reports.get(timeout=30)
            received[report.seed] = report
    except queue.Empty:
        pass
    stop.set()
    for child in children.values():
        child.join(timeout=30)
        if child.exitcode is None:
            child.kill()
            child.join()

    outcome = [
        (seed, child.exitcode, received[seed].error if seed in received else "no report")
        for seed, child in children.items()
    ]
    assert outcome == [(seed, 0, None) for seed in children]
    writers = [received[seed] for seed in work]
    assert max(r.began for r in writers) < min(r.ended for r in writers)  # they overlapped
    sealed = 0
    if with_sealer:
        assert received[SEALER].began < min(r.ended for r in writers)
        sealed = int(received[SEALER].codes[0])
    return {seed: received[seed].codes for seed in work}, sealed


def totals_of(ids: list[int]) -> dict[int, Totals]:
    return {
        row[0]: (row[1], row[2], row[3], row[4])
        for row in Account.objects.filter(pk__in=ids).values_list(
            "pk", "debits_pending", "debits_posted", "credits_pending", "credits_posted"
        )
    }


def assert_sealed_ledger_verifies(transfers: int, already_sealed: int = 0) -> None:
    assert Transfer.objects.count() == transfers
    assert services.seal(now=NOW + dt.timedelta(minutes=1)) == transfers - already_sealed
    report = verify()
    checkpoints = Checkpoint.objects.count()
    assert (report.ok, report.problems, report.transfers, report.checkpoints) == (
        True,
        None,
        transfers,
        checkpoints,
    )
    assert checkpoints >= 1


def open_accounts(count: int) -> list[int]:
    accounts = [
        services.open_account(owner=f"hot:{i}", purpose=Purpose.ADJUSTMENT, currency="CNY", now=NOW)
        for i in range(count)
    ]
    assert {a.flags for a in accounts} == {0}
    return sorted(a.pk for a in accounts)


# --------------------------------------------------------------------------- the tests


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_reset_truncate_guard", "committed_db")
def test_concurrent_writers_on_hot_accounts_neither_deadlock_nor_lose_money() -> None:
    # given three hot accounts without flags, committed
    ids = open_accounts(3)

    # when four processes each commit their batches among them at once, while a fifth seals
    codes, sealed = run_writers({seed: plan(seed, ids) for seed in SEEDS}, with_sealer=True)

    # then every writer exited cleanly (no deadlock or other error) and every transfer was ok
    expected_totals, transfers = replay(SEEDS, ids)
    every_code = [code for seed in SEEDS for code in codes[seed]]
    assert (len(every_code), set(every_code)) == (transfers, {Result.OK.value})
    # and the totals are exactly those of the same work done serially, and balance
    found = totals_of(ids)
    assert found == expected_totals
    assert sum(t[3] - t[1] for t in found.values()) == 0
    assert sum(t[2] - t[0] for t in found.values()) == 0
    # and once the rest is sealed, the chain, checkpoints, conservation and cached totals verify
    assert sealed > 0
    assert_sealed_ledger_verifies(transfers, already_sealed=sealed)


HOLDS = 24
SHARED_IDS = 24


def race_plan(seed: int, holds: list[uuid.UUID], pairs: list[tuple[int, int]]) -> list[NewTransfer]:
    """Every writer tries to post or void every hold, and to write every shared id (from its
    own pair of accounts: the same fields as some writers, different from others)."""
    rng = random.Random(seed)  # noqa: S311 (test data, reproducible from the seed)
    requests = [
        NewTransfer(
            id=uuid.UUID(int=(seed << 64) | n),
            kind=rng.choice([Kind.POST, Kind.VOID]),
            pending_id=hold,
        )
        for n, hold in enumerate(holds)
    ]
    debit, credit = pairs[seed % len(pairs)]
    requests += [
        NewTransfer(
            id=uuid.UUID(int=(0xACE << 64) | n),
            debit_account_id=debit,
            credit_account_id=credit,
            amount=500,
        )
        for n in range(SHARED_IDS)
    ]
    rng.shuffle(requests)
    return requests


@pytest.mark.timeout(120)
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_reset_truncate_guard", "committed_db")
def test_racing_writers_resolve_each_hold_once_and_write_each_id_once() -> None:
    # given three disjoint pairs of accounts and committed holds on each pair
    ids = open_accounts(6)
    pairs = [(ids[0], ids[1]), (ids[2], ids[3]), (ids[4], ids[5])]
    holds = [
        NewTransfer(
            id=uuid.UUID(int=(0xB01D << 64) | n),
            debit_account_id=pairs[n % 3][0],
            credit_account_id=pairs[n % 3][1],
            amount=100 + n,
            kind=Kind.PENDING,
        )
        for n in range(HOLDS)
    ]
    assert services.create_transfers(holds, now=NOW) == [Result.OK] * HOLDS
    plans = {seed: race_plan(seed, [h.id for h in holds], pairs) for seed in SEEDS}

    # when four processes race, each submitting its requests one by one
    codes, _ = run_writers({seed: [[request] for request in plans[seed]] for seed in SEEDS})

    # then each hold was resolved by exactly one writer; the others found it resolved
    attempts = [
        (request, code)
        for seed in SEEDS
        for request, code in zip(plans[seed], codes[seed], strict=True)
    ]
    winners: dict[uuid.UUID, NewTransfer] = {}
    for hold in holds:
        tries = [(request, code) for request, code in attempts if request.pending_id == hold.id]
        won = [request for request, code in tries if code == Result.OK]
        assert len(won) == 1, tries
        winners[hold.id] = won[0]
        assert sorted(code for _, code in tries) == sorted(
            [Result.OK] + [Result.PENDING_ALREADY_RESOLVED] * (len(SEEDS) - 1)
        )
    # and each shared id was written once: the rest got exists, or exists with different
    # fields when they named another pair of accounts than the writer that won
    expected = totals_after_holds(holds, winners, ids)
    for n in range(SHARED_IDS):
        shared = uuid.UUID(int=(0xACE << 64) | n)
        tries = [(request, code) for request, code in attempts if request.id == shared]
        first = [request for request, code in tries if code == Result.OK]
        assert len(first) == 1, tries
        winner = first[0]
        for request, code in tries:
            same = (request.debit_account_id, request.credit_account_id) == (
                winner.debit_account_id,
                winner.credit_account_id,
            )
            if request is not winner:
                assert code == (Result.EXISTS if same else Result.EXISTS_WITH_DIFFERENT_FIELDS)
        assert winner.debit_account_id and winner.credit_account_id
        debit, credit = winner.debit_account_id, winner.credit_account_id
        expected[debit] = add_posted(expected[debit], debit=500)
        expected[credit] = add_posted(expected[credit], credit=500)
    # and the totals follow from the winners alone, balance, and verify once sealed
    assert totals_of(ids) == expected
    assert_sealed_ledger_verifies(HOLDS * 2 + SHARED_IDS)


def totals_after_holds(
    holds: list[NewTransfer], winners: dict[uuid.UUID, NewTransfer], ids: list[int]
) -> dict[int, Totals]:
    totals: dict[int, Totals] = dict.fromkeys(ids, (0, 0, 0, 0))
    for hold in holds:
        assert hold.debit_account_id and hold.credit_account_id and hold.amount
        posted = hold.amount if winners[hold.id].kind == Kind.POST else 0
        debit, credit = hold.debit_account_id, hold.credit_account_id
        totals[debit] = add_posted(totals[debit], debit=posted)
        totals[credit] = add_posted(totals[credit], credit=posted)
    return totals


def add_posted(totals: Totals, *, debit: int = 0, credit: int = 0) -> Totals:
    debits_pending, debits_posted, credits_pending, credits_posted = totals
    return (debits_pending, debits_posted + debit, credits_pending, credits_posted + credit)
