"""The only writers of the ledger.

``create_transfers`` follows TigerBeetle's semantics: a batch returns one result code per
transfer; a transfer id chosen by the caller makes a retry with the same fields return ``exists``
and move nothing; transfers flagged ``linked`` form a chain with the next one and succeed or fail
together. Each batch runs in one transaction that locks every account it touches exactly once, in
id order, so concurrent batches queue up instead of deadlocking.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError

from ledger import canonical
from ledger.db import bound_cursor, raw_cursor, send_queued
from ledger.models import (
    Account,
    AccountFlags,
    Checkpoint,
    Kind,
    Purpose,
    Seal,
    Transfer,
)
from ledger.money import exponent
from ledger.signing import signing_key

# Advisory lock ids (arbitrary constants, one per single-writer job).
SEAL_LOCK = 0x5EA1_0001
EXPIRY_CODE = 1  # ``code`` of the void the ledger writes when a pending transfer times out
EXPIRY_NAMESPACE = uuid.UUID("6f1c2d0e-3a4b-4c5d-8e9f-0a1b2c3d4e5f")


class Result(StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    EXCEEDS_DEBITS = "exceeds_debits"
    PENDING_NOT_FOUND = "pending_not_found"
    PENDING_ALREADY_RESOLVED = "pending_already_resolved"
    PENDING_EXPIRED = "pending_expired"
    PENDING_HAS_DIFFERENT_ACCOUNTS = "pending_has_different_accounts"
    EXCEEDS_PENDING_AMOUNT = "exceeds_pending_amount"
    CURRENCY_MISMATCH = "currency_mismatch"
    ACCOUNT_NOT_FOUND = "account_not_found"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    TIMEOUT_RESERVED_FOR_PENDING = "timeout_reserved_for_pending"
    METADATA_MUST_BE_PLAIN = "metadata_must_be_plain"
    AMOUNT_TOO_LARGE = "amount_too_large"
    CODE_OUT_OF_RANGE = "code_out_of_range"
    TIMEOUT_OUT_OF_RANGE = "timeout_out_of_range"
    OVERFLOWS_TOTALS = "overflows_totals"
    VOID_AMOUNT_MISMATCH = "void_amount_mismatch"
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"


@dataclass(frozen=True)
class NewTransfer:
    """What a caller asks for. For ``post``/``void`` the accounts come from the pending transfer
    (give them only to assert them); a ``post`` without ``amount`` captures the whole hold."""

    id: uuid.UUID
    debit_account_id: int | None = None
    credit_account_id: int | None = None
    amount: int | None = None
    kind: str = Kind.SINGLE
    pending_id: uuid.UUID | None = None
    timeout: int | None = None
    linked: bool = False
    code: int = 0
    metadata: Mapping[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- accounts

# Accounts that hold a party's money may not go below zero: a wallet cannot spend what it does
# not have, and an order's hold or a lease's escrow cannot pay out more than was put in (a defect
# that tried would be refused, ``insufficient_funds``, instead of leaving a silent negative).
DEFAULT_FLAGS = {
    Purpose.WALLET: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    Purpose.ORDER_HOLD: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
    Purpose.LEASE_ESCROW: AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
}


def open_account(
    *,
    owner: str,
    purpose: str,
    currency: str,
    now: dt.datetime,
    reference: str = "",
    flags: int | None = None,
) -> Account:
    """The account for (owner, purpose, reference, currency), created on first use (idempotent;
    the UNIQUE constraint settles a race). Wallets, order holds and lease escrows may not be
    overdrawn unless flags say otherwise (``DEFAULT_FLAGS``).
    """
    exponent(currency)  # raises MoneyError for an unsupported currency
    if purpose not in Purpose.values:
        raise ValueError(f"unknown account purpose {purpose!r}")
    key = {"owner": owner, "purpose": purpose, "reference": reference, "currency": currency}
    chosen = DEFAULT_FLAGS.get(Purpose(purpose), AccountFlags.NONE) if flags is None else flags
    # One statement finds it or creates it. ON CONFLICT DO NOTHING: a concurrent creator wins
    # without an error or a savepoint; its row is not in this statement's snapshot, so then
    # (only then) a second statement reads it.
    params = [*key.values(), *key.values(), chosen, now]
    found = next(iter(Account.objects.raw(_OPEN_ACCOUNT_SQL, params)), None)
    if found is None:
        found = Account.objects.get(**key)
    if flags is not None and found.flags != flags:
        raise ValueError(f"account {found.pk} exists with flags {found.flags}, not {flags}")
    return found


_OPEN_ACCOUNT_SQL = """
WITH found AS (
    SELECT * FROM ledger_account
    WHERE owner = %s AND purpose = %s AND reference = %s AND currency = %s
), created AS (
    INSERT INTO ledger_account (owner, purpose, reference, currency, flags, debits_pending,
        debits_posted, credits_pending, credits_posted, created_at)
    SELECT %s, %s, %s, %s, %s, 0, 0, 0, 0, %s WHERE NOT EXISTS (SELECT FROM found)
    ON CONFLICT DO NOTHING
    RETURNING *
)
SELECT * FROM found UNION ALL SELECT * FROM created
"""


@dataclass(frozen=True)
class AccountKey:
    owner: str
    purpose: str
    currency: str
    reference: str = ""


def open_accounts(keys: Sequence[AccountKey], *, now: dt.datetime) -> dict[AccountKey, int]:
    """Many accounts at once (default flags), created where missing: key → account id. Two
    statements whatever the count; idempotent like ``open_account``."""
    unique = sorted(set(keys), key=lambda k: (k.owner, k.purpose, k.reference, k.currency))
    for k in unique:
        if k.purpose not in Purpose.values:
            raise ValueError(f"unknown account purpose {k.purpose!r}")
        exponent(k.currency)
    if not unique:
        return {}
    columns: list[list[str] | list[int]] = [
        [k.owner for k in unique],
        [k.purpose for k in unique],
        [k.reference for k in unique],
        [k.currency for k in unique],
        [int(DEFAULT_FLAGS.get(Purpose(k.purpose), AccountFlags.NONE)) for k in unique],
    ]
    with raw_cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_account (owner, purpose, reference, currency, flags, "
            "debits_pending, debits_posted, credits_pending, credits_posted, created_at) "
            "SELECT o, p, r, c, f, 0, 0, 0, 0, %s "
            "FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::int[]) "
            "AS t(o, p, r, c, f) ON CONFLICT DO NOTHING",
            [now, *columns],
        )
        cursor.execute(
            "SELECT a.id, a.owner, a.purpose, a.reference, a.currency FROM ledger_account a "
            "JOIN unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS t(o, p, r, c) "
            "ON a.owner = t.o AND a.purpose = t.p AND a.reference = t.r AND a.currency = t.c",
            columns[:4],
        )
        return {AccountKey(o, p, c, r): pk for pk, o, p, r, c in cursor.fetchall()}


# --------------------------------------------------------------------------- transfers

_TOTALS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")
AMOUNT_MAX = 2**63 - 1  # PostgreSQL bigint, like the account totals
CODE_MAX = 2**31 - 1
TIMEOUT_MAX = 10 * 365 * 24 * 3600  # seconds: a hold lasts at most ten years


@dataclass(slots=True)
class _Totals:
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    flags: int
    currency: str

    def violates(self) -> Result | None:
        if (
            max(
                self.debits_pending + self.debits_posted, self.credits_pending + self.credits_posted
            )
            > AMOUNT_MAX
        ):
            return Result.OVERFLOWS_TOTALS
        if self.flags & AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS and (
            self.debits_pending + self.debits_posted > self.credits_posted
        ):
            return Result.INSUFFICIENT_FUNDS
        if self.flags & AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS and (
            self.credits_pending + self.credits_posted > self.debits_posted
        ):
            return Result.EXCEEDS_DEBITS
        return None

    def add(self, delta: tuple[int, int, int, int], sign: int = 1) -> None:
        debits_pending, debits_posted, credits_pending, credits_posted = delta
        self.debits_pending += sign * debits_pending
        self.debits_posted += sign * debits_posted
        self.credits_pending += sign * credits_pending
        self.credits_posted += sign * credits_posted


@dataclass(slots=True)
class _Stored:
    """A transfer as written (or about to be): what an ``exists`` check compares against."""

    id: uuid.UUID
    kind: str
    debit_account_id: int
    credit_account_id: int
    amount: int
    currency: str
    pending_id: uuid.UUID | None
    timeout: int | None
    expires_at: dt.datetime | None
    linked: bool
    code: int
    metadata: dict[str, Any]


def _plain(value: Any) -> bool:
    """JSON without floats: metadata is hashed into the chain and must round-trip exactly."""
    if isinstance(value, str):
        return "\x00" not in value  # PostgreSQL text cannot hold NUL
    if isinstance(value, int):
        return abs(value) <= AMOUNT_MAX
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


class _Batch:
    def __init__(self, now: dt.datetime, allow_expired: bool) -> None:
        self.now = now
        self.allow_expired = allow_expired
        self.totals: dict[int, _Totals] = {}
        self.pendings: dict[uuid.UUID, _Stored] = {}
        self.existing: dict[uuid.UUID, _Stored] = {}
        self.resolved: set[uuid.UUID] = set()
        self.new: list[_Stored] = []

    def load(self, transfers: Sequence[NewTransfer], *, check_existing: bool = True) -> None:
        # One statement per read with an array parameter: a batch may name 100,000 transfers,
        # and an ORM ``IN (...)`` list of that size costs seconds to build and quote.
        pending_ids = list({t.pending_id for t in transfers if t.pending_id is not None})
        if pending_ids:
            self.pendings = {
                row.id: row
                for row in _stored(
                    f"{_PENDINGS_SQL} WHERE id = ANY(%b) AND kind = 'pending'", pending_ids
                )
            }
        account_ids = {i for t in transfers for i in (t.debit_account_id, t.credit_account_id)}
        for pending in self.pendings.values():
            account_ids |= {pending.debit_account_id, pending.credit_account_id}
        account_ids.discard(None)
        # The one lock of the batch: every touched account, once, in id order.
        for row in _rows(
            "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted, flags, "
            "currency FROM ledger_account WHERE id = ANY(%b) ORDER BY id FOR UPDATE",
            sorted(account_ids),
        ):
            self.totals[row[0]] = _Totals(*row[1:])
        # Read after the lock: a concurrent batch on these accounts has committed by now.
        if check_existing:
            ids = list({t.id for t in transfers})
            self.existing = {
                row.id: row for row in _stored(f"{_STORED_SQL} WHERE id = ANY(%b)", ids)
            }
        if pending_ids:
            self.resolved = {
                row[0]
                for row in _rows(
                    "SELECT pending_id FROM ledger_transfer WHERE pending_id = ANY(%b)",
                    pending_ids,
                )
            }

    def apply(self, request: NewTransfer) -> Result:
        """Check one transfer against the state so far and, if it is ok, apply it."""
        if request.id in self.existing:
            return _compare(request, self.existing[request.id], self.pendings)
        if request.kind in (Kind.POST, Kind.VOID):
            outcome = self._resolution(request)
        elif request.kind in (Kind.SINGLE, Kind.PENDING):
            outcome = self._movement(request)
        else:
            raise ValueError(f"unknown transfer kind {request.kind!r}")
        if isinstance(outcome, Result):
            return outcome
        deltas = _deltas(
            outcome, self.pendings.get(outcome.pending_id) if outcome.pending_id else None
        )
        for account_id, delta in deltas.items():
            self.totals[account_id].add(delta)
        broken = next((r for a in deltas if (r := self.totals[a].violates())), None)
        if broken is not None:
            for account_id, delta in deltas.items():
                self.totals[account_id].add(delta, -1)
            return broken
        self.new.append(outcome)
        self.existing[outcome.id] = outcome
        if outcome.kind == Kind.PENDING:
            self.pendings[outcome.id] = outcome
        if outcome.pending_id is not None:
            self.resolved.add(outcome.pending_id)
        return Result.OK

    def _common(self, request: NewTransfer) -> Result | None:
        if not 0 <= request.code <= CODE_MAX:
            return Result.CODE_OUT_OF_RANGE
        if not _plain(dict(request.metadata)):
            return Result.METADATA_MUST_BE_PLAIN
        if request.timeout is not None and request.kind != Kind.PENDING:
            return Result.TIMEOUT_RESERVED_FOR_PENDING
        return None

    def _movement(self, request: NewTransfer) -> _Stored | Result:
        if (problem := self._common(request)) is not None:
            return problem
        if request.amount is None or request.amount <= 0:
            return Result.AMOUNT_MUST_BE_POSITIVE
        debit, credit = request.debit_account_id, request.credit_account_id
        if debit is None or credit is None or debit not in self.totals or credit not in self.totals:
            return Result.ACCOUNT_NOT_FOUND
        if debit == credit:
            return Result.ACCOUNTS_MUST_BE_DIFFERENT
        currency = self.totals[debit].currency
        if self.totals[credit].currency != currency:
            return Result.CURRENCY_MISMATCH
        if request.amount > AMOUNT_MAX:
            return Result.AMOUNT_TOO_LARGE
        if request.timeout is not None and not 0 < request.timeout <= TIMEOUT_MAX:
            return Result.TIMEOUT_OUT_OF_RANGE
        expires = self.now + dt.timedelta(seconds=request.timeout) if request.timeout else None
        return _Stored(
            request.id,
            request.kind,
            debit,
            credit,
            request.amount,
            currency,
            None,
            request.timeout,
            expires,
            request.linked,
            request.code,
            dict(request.metadata),
        )

    def _resolution(self, request: NewTransfer) -> _Stored | Result:
        if (problem := self._common(request)) is not None:
            return problem
        pending = self.pendings.get(request.pending_id) if request.pending_id else None
        if pending is None:
            return Result.PENDING_NOT_FOUND
        if request.debit_account_id not in (None, pending.debit_account_id) or (
            request.credit_account_id not in (None, pending.credit_account_id)
        ):
            return Result.PENDING_HAS_DIFFERENT_ACCOUNTS
        if pending.id in self.resolved:
            return Result.PENDING_ALREADY_RESOLVED
        if (
            not self.allow_expired
            and pending.expires_at is not None
            and pending.expires_at <= self.now
        ):
            return Result.PENDING_EXPIRED
        amount = pending.amount
        if request.kind == Kind.VOID and request.amount not in (None, pending.amount):
            return Result.VOID_AMOUNT_MISMATCH
        if request.kind == Kind.POST and request.amount is not None:
            if request.amount <= 0:
                return Result.AMOUNT_MUST_BE_POSITIVE
            if request.amount > pending.amount:
                return Result.EXCEEDS_PENDING_AMOUNT
            amount = request.amount
        return _Stored(
            request.id,
            request.kind,
            pending.debit_account_id,
            pending.credit_account_id,
            amount,
            pending.currency,
            pending.id,
            None,
            None,
            request.linked,
            request.code,
            dict(request.metadata),
        )

    def snapshot(
        self, chain: Sequence[NewTransfer]
    ) -> tuple[dict[int, tuple[int, ...]], int, set[uuid.UUID]]:
        """What a linked chain may change, to undo it if a member fails: the totals of the
        accounts it touches only (copying every account would make large batches quadratic)."""
        touched: set[int | None] = set()
        for request in chain:
            touched |= {request.debit_account_id, request.credit_account_id}
            if request.pending_id is not None and (p := self.pendings.get(request.pending_id)):
                touched |= {p.debit_account_id, p.credit_account_id}
        totals = {
            a: tuple(getattr(t, n) for n in _TOTALS) for a, t in self.totals.items() if a in touched
        }
        return totals, len(self.new), set(self.resolved)

    def restore(self, state: tuple[dict[int, tuple[int, ...]], int, set[uuid.UUID]]) -> None:
        totals, count, resolved = state
        for account_id, values in totals.items():
            for name, value in zip(_TOTALS, values, strict=True):
                setattr(self.totals[account_id], name, value)
        for undone in self.new[count:]:
            self.existing.pop(undone.id, None)
            if undone.kind == Kind.PENDING:
                self.pendings.pop(undone.id, None)
        del self.new[count:]
        self.resolved = resolved


_STORED_COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount, currency, pending_id, timeout, "
    "expires_at, linked, code"
)
_STORED_SQL = f"SELECT {_STORED_COLUMNS}, metadata FROM ledger_transfer"  # noqa: S608 - constant
# A pending transfer is read for its accounts, amount and expiry: its metadata is never compared
# (a batch of 50,000 posts would parse 50,000 JSON documents for nothing).
_PENDINGS_SQL = f"SELECT {_STORED_COLUMNS}, NULL FROM ledger_transfer"  # noqa: S608 - constant


def _rows(sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
    """One statement with one array parameter (``%b``, bound on the server), on psycopg's cursor
    directly (without Django's per-statement wrapper; errors are still Django's)."""
    with bound_cursor() as cursor:
        cursor.execute(sql, [list(values)])
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def _stored(sql: str, ids: Sequence[uuid.UUID]) -> Iterable[_Stored]:
    for row in _rows(sql, ids):
        # Django's connection loads jsonb as text (its JSONField parses it); so do we.
        metadata = json.loads(row[11]) if isinstance(row[11], str) else row[11] or {}
        yield _Stored(*row[:11], metadata)  # type: ignore[call-arg]


def _compare(
    request: NewTransfer, stored: _Stored, pendings: Mapping[uuid.UUID, _Stored]
) -> Result:
    if request.kind in (Kind.POST, Kind.VOID):
        pending = pendings.get(stored.pending_id) if stored.pending_id else None
        full = pending.amount if pending else stored.amount
        amount_matches = (request.amount or full) == stored.amount
        accounts_match = request.debit_account_id in (None, stored.debit_account_id) and (
            request.credit_account_id in (None, stored.credit_account_id)
        )
    else:
        amount_matches = request.amount == stored.amount
        accounts_match = (request.debit_account_id, request.credit_account_id) == (
            stored.debit_account_id,
            stored.credit_account_id,
        )
    same = (
        amount_matches
        and accounts_match
        and request.kind == stored.kind
        and request.pending_id == stored.pending_id
        and request.timeout == stored.timeout
        and request.linked == stored.linked
        and request.code == stored.code
        and dict(request.metadata) == stored.metadata
    )
    return Result.EXISTS if same else Result.EXISTS_WITH_DIFFERENT_FIELDS


def _deltas(transfer: _Stored, pending: _Stored | None) -> dict[int, tuple[int, int, int, int]]:
    """Changes to (debits_pending, debits_posted, credits_pending, credits_posted) per account."""
    amount = transfer.amount
    held = pending.amount if pending is not None and transfer.pending_id else 0
    if transfer.kind == Kind.SINGLE:
        debit, credit = (0, amount, 0, 0), (0, 0, 0, amount)
    elif transfer.kind == Kind.PENDING:
        debit, credit = (amount, 0, 0, 0), (0, 0, amount, 0)
    elif transfer.kind == Kind.POST:  # the whole hold is released; ``amount`` of it is posted
        debit, credit = (-held, amount, 0, 0), (0, 0, -held, amount)
    else:  # void
        debit, credit = (-held, 0, 0, 0), (0, 0, -held, 0)
    return {transfer.debit_account_id: debit, transfer.credit_account_id: credit}


def create_transfers(
    transfers: Sequence[NewTransfer], *, now: dt.datetime, _allow_expired: bool = False
) -> list[Result]:
    """Apply a batch; one result per transfer, in order. Atomic: the batch's ``ok`` transfers
    commit together. Retrying with the same ids and fields returns ``exists`` and moves nothing.

    A batch of one takes one round trip (``_one``); inside the caller's transaction it takes no
    savepoint, so should it raise (a lost connection, say), Django marks the caller's whole
    transaction for rollback rather than only this call's part.
    """
    optimistic = True
    if len(transfers) == 1 and not _allow_expired:
        statement = _one_params(transfers[0], now)
        if statement is not None:
            result = _one(*statement)
            if result is not None:
                return [result]
            optimistic = False  # the id exists, or an account is missing: look before writing
    for attempt in range(3):
        try:
            with transaction.atomic():
                # First optimistically (new ids are the common case: one query fewer); a retried
                # id then fails the primary key, and the next attempt looks it up.
                return _create(
                    transfers, now, _allow_expired, optimistic=optimistic and attempt == 0
                )
        except IntegrityError:
            # An id that already exists, or a pending transfer a concurrent batch resolved
            # first. Run again: the check now sees that row.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


_ONE_SQL = (
    "SELECT ledger_one_transfer(%s::uuid, %s::text, %s::bigint, %s::bigint, %s::bigint, "
    "%s::integer, %s::timestamptz, %s::integer, %s::jsonb, %s::timestamptz)"
)
_ONE_RESOLUTION_SQL = (
    "SELECT ledger_one_resolution(%s::uuid, %s::text, %s::uuid, %s::bigint, %s::bigint, "
    "%s::bigint, %s::integer, %s::jsonb, %s::timestamptz)"
)


def _one_params(request: NewTransfer, now: dt.datetime) -> tuple[str, list[Any]] | None:
    """The one-transfer statement and its arguments for a transfer that is not linked and whose
    own fields are all acceptable; None for any other (the batch path gives it its code)."""
    if request.kind in (Kind.POST, Kind.VOID):
        return _resolution_params(request, now)
    debit, credit, amount, timeout = (
        request.debit_account_id,
        request.credit_account_id,
        request.amount,
        request.timeout,
    )
    if (
        request.kind not in (Kind.SINGLE, Kind.PENDING)
        or request.linked
        or type(debit) is not int
        or type(credit) is not int
        or type(amount) is not int
        or type(request.code) is not int
        or not (0 < debit <= AMOUNT_MAX and 0 < credit <= AMOUNT_MAX and debit != credit)
        or not 0 < amount <= AMOUNT_MAX
        or not 0 <= request.code <= CODE_MAX
        or (timeout is not None and (request.kind != Kind.PENDING or type(timeout) is not int))
        or (timeout is not None and not 0 < timeout <= TIMEOUT_MAX)
    ):
        return None
    metadata = dict(request.metadata)
    if not _plain(metadata):
        return None
    return _ONE_SQL, [
        request.id,
        str(request.kind),
        debit,
        credit,
        amount,
        timeout,
        now + dt.timedelta(seconds=timeout) if timeout else None,
        request.code,
        json.dumps(metadata, sort_keys=True),
        now,
    ]


def _resolution_params(request: NewTransfer, now: dt.datetime) -> tuple[str, list[Any]] | None:
    debit, credit, amount = request.debit_account_id, request.credit_account_id, request.amount
    if (
        request.linked
        or not isinstance(request.pending_id, uuid.UUID)
        or request.timeout is not None
        or type(request.code) is not int
        or not 0 <= request.code <= CODE_MAX
        or any(
            v is not None and (type(v) is not int or not 0 < v <= AMOUNT_MAX)
            for v in (debit, credit, amount)
        )
    ):
        return None
    metadata = dict(request.metadata)
    if not _plain(metadata):
        return None
    return _ONE_RESOLUTION_SQL, [
        request.id,
        str(request.kind),
        request.pending_id,
        debit,
        credit,
        amount,
        request.code,
        json.dumps(metadata, sort_keys=True),
        now,
    ]


def _one(sql: str, params: list[Any]) -> Result | None:
    """One transfer in one round trip: the SQL function ``ledger_one_transfer`` (a single or a
    pending, migration 0004) or ``ledger_one_resolution`` (a post or a void, 0005) locks both
    accounts in id order, checks the id and the limits after the lock, and writes what
    ``_write`` would. Outside a transaction its statement is the transaction (and the durable
    commit); inside one it needs no savepoint: it meets no unique violation (ON CONFLICT DO
    NOTHING), the errors the batch path's savepoint is there to retry, and an error it does raise
    marks the caller's transaction for rollback (``atomic(savepoint=False)``).

    None when the batch path must decide (nothing written): a missing account, a currency
    mismatch, an id that exists; for a post or a void, every refusal."""
    if connection.in_atomic_block:
        connection.validate_no_broken_transaction()
        with transaction.atomic(savepoint=False), raw_cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    else:
        with raw_cursor() as cursor:
            cursor.execute(sql, params)
            row = cursor.fetchone()
    return None if row is None or row[0] is None else Result(row[0])


def _create(
    transfers: Sequence[NewTransfer], now: dt.datetime, allow_expired: bool, *, optimistic: bool
) -> list[Result]:
    batch, results = _evaluate(transfers, now, allow_expired, check_existing=not optimistic)
    if optimistic and any(r != Result.OK for r in results):
        # A refusal might really be a replay ("exists"): decide with the existing rows in view.
        batch, results = _evaluate(transfers, now, allow_expired, check_existing=True)
    _write(batch, now)
    return results


def _evaluate(
    transfers: Sequence[NewTransfer], now: dt.datetime, allow_expired: bool, *, check_existing: bool
) -> tuple[_Batch, list[Result]]:
    batch = _Batch(now, allow_expired)
    batch.load(transfers, check_existing=check_existing)
    return batch, _check(batch, transfers)


def _check(batch: _Batch, transfers: Sequence[NewTransfer]) -> list[Result]:
    """Apply the transfers to the loaded state in order, chain by chain; one result each."""
    results: list[Result] = []
    start = 0
    while start < len(transfers):
        end = start
        while end < len(transfers) - 1 and transfers[end].linked:
            end += 1
        chain = transfers[start : end + 1]
        open_chain = chain[-1].linked
        # A lone transfer undoes itself when it fails; only a linked chain needs a snapshot.
        state = batch.snapshot(chain) if len(chain) > 1 or open_chain else None
        codes = [batch.apply(t) for t in chain]
        if open_chain:
            codes[-1] = Result.LINKED_EVENT_CHAIN_OPEN
        all_new = all(c == Result.OK for c in codes)
        all_replayed = all(c == Result.EXISTS for c in codes)
        if state is not None and len(chain) > 1 and not (all_new or all_replayed):
            batch.restore(state)
            failed = {Result.OK, Result.EXISTS}
            codes = [Result.LINKED_EVENT_FAILED if c in failed else c for c in codes]
        elif state is not None and open_chain:
            batch.restore(state)
        results.extend(codes)
        start = end + 1
    return results


class OpenBatch:
    """A batch whose accounts are locked and whose state is read (``open_batch``); ``write``
    checks and writes it later in the same transaction."""

    def __init__(self, transfers: Sequence[NewTransfer], batch: _Batch) -> None:
        self._transfers = transfers
        self._batch: _Batch | None = batch

    def write(self) -> list[Result]:
        """One result per transfer, as ``create_transfers`` gives; the ``ok`` ones are written in
        one statement (sent, and not awaited, when the connection is in pipeline mode). Once."""
        if self._batch is None:
            raise RuntimeError("this batch has been written")
        batch, self._batch = self._batch, None
        results = _check(batch, self._transfers)
        _write(batch, batch.now)
        return results


def open_batch(transfers: Sequence[NewTransfer], *, now: dt.datetime) -> OpenBatch:
    """The first half of a large batch that is part of the caller's own transaction (a clearing
    round's moves): lock every account the batch touches, in id order, and read what its checks
    need, with the existing ids in view (a replay gives ``exists``), as ``create_transfers`` does.
    The caller may then send statements of its own, and the server runs them while
    ``OpenBatch.write`` checks the transfers in Python: in psycopg's pipeline mode the reads here
    wait only for the statements sent before them.

    Unlike ``create_transfers`` it takes no savepoint and never retries: it must run inside the
    caller's ``transaction.atomic`` block, and any database error (one raised when the caller's
    pipeline ends, for a write sent in pipeline mode) aborts that transaction whole. The accounts'
    locks make the checks hold until it ends: a concurrent batch on the same accounts waits."""
    if not connection.in_atomic_block:
        raise TransactionManagementError("open_batch runs inside the caller's transaction")
    batch = _Batch(now, allow_expired=False)
    batch.load(transfers, check_existing=True)
    return OpenBatch(transfers, batch)


# From this many transfers a batch's references are checked per statement (about 0.1 ms each, and
# about 1 µs a row) rather than per row (a few µs a row and reference).
BULK_CHECKS = 32

# One statement writes the transfers, their entries, the sealing outbox rows and the accounts'
# new totals: one round trip whatever the batch size (arrays, not one placeholder per value, bound
# on the server in binary).
_WRITE_SQL = """
WITH t AS (
    INSERT INTO ledger_transfer (id, kind, debit_account_id, credit_account_id, amount, currency,
        pending_id, timeout, expires_at, linked, code, metadata, created_at)
    SELECT id, kind, debit, credit, amount, currency, pending, timeout, expires, linked, code,
        meta::jsonb, %(now)b::timestamptz
    FROM unnest(%(ids)b::uuid[], %(kinds)b::text[], %(debits)b::bigint[], %(credits)b::bigint[],
        %(amounts)b::bigint[], %(currencies)b::text[], %(pendings)b::uuid[], %(timeouts)b::int[],
        %(expires)b::timestamptz[], %(linked)b::bool[], %(codes)b::int[], %(metas)b::text[])
        AS x(id, kind, debit, credit, amount, currency, pending, timeout, expires, linked, code,
             meta)
), e AS (
    -- Each transfer's two entries, as ``_deltas`` gives them (debit side first), derived here
    -- from the transfer's columns and the amount its pending transfer held: the server makes
    -- them faster than Python can send them.
    INSERT INTO ledger_entry (transfer_id, account_id, debits_pending, debits_posted,
        credits_pending, credits_posted, created_at)
    SELECT y.id, s.account, s.dp, s.dpo, s.cp, s.cpo, %(now)b::timestamptz
    FROM unnest(%(ids)b::uuid[], %(kinds)b::text[], %(debits)b::bigint[], %(credits)b::bigint[],
        %(amounts)b::bigint[], %(held)b::bigint[]) AS y(id, kind, debit, credit, amount, held)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN y.kind = 'pending' THEN y.amount ELSE -y.held END AS pending,
            CASE WHEN y.kind IN ('single', 'post') THEN y.amount ELSE 0 END AS posted
    ) AS m
    CROSS JOIN LATERAL (
        VALUES (y.debit, m.pending, m.posted, 0::bigint, 0::bigint),
            (y.credit, 0::bigint, 0::bigint, m.pending, m.posted)
    ) AS s(account, dp, dpo, cp, cpo)
), q AS (
    INSERT INTO ledger_sealqueue (transfer_id) SELECT unnest(%(ids)b::uuid[])
)
UPDATE ledger_account AS a
SET debits_pending = v.dp, debits_posted = v.dpo, credits_pending = v.cp, credits_posted = v.cpo
FROM unnest(%(a_ids)b::bigint[], %(a_dp)b::bigint[], %(a_dpo)b::bigint[], %(a_cp)b::bigint[],
    %(a_cpo)b::bigint[]) AS v(id, dp, dpo, cp, cpo)
WHERE a.id = v.id
"""


def _write(batch: _Batch, now: dt.datetime) -> None:
    if not batch.new:
        return
    new = batch.new
    touched = sorted({t.debit_account_id for t in new} | {t.credit_account_id for t in new})
    totals = [batch.totals[a] for a in touched]
    params: dict[str, Any] = {
        "now": now,
        "ids": [t.id for t in new],
        "kinds": [str(t.kind) for t in new],
        "debits": [t.debit_account_id for t in new],
        "credits": [t.credit_account_id for t in new],
        "amounts": [t.amount for t in new],
        "currencies": [t.currency for t in new],
        "pendings": [t.pending_id for t in new],
        "timeouts": [t.timeout for t in new],
        "expires": [t.expires_at for t in new],
        "linked": [t.linked for t in new],
        "codes": [t.code for t in new],
        "metas": [json.dumps(t.metadata, sort_keys=True) for t in new],
        # What each post or void's pending transfer held (see ``_deltas``).
        "held": [batch.pendings[t.pending_id].amount if t.pending_id else 0 for t in new],
        "a_ids": touched,
        **{
            f"a_{name}": [getattr(t, column) for t in totals]
            for name, column in zip(("dp", "dpo", "cp", "cpo"), _TOTALS, strict=True)
        },
    }
    with bound_cursor() as cursor:
        if len(new) >= BULK_CHECKS:
            # References checked once for the statement rather than row by row (ledger
            # migration 0010); for the rest of the transaction, whose statements are all checked
            # either way.
            cursor.execute("SELECT set_config('ledger.bulk_checks', 'on', true)")
        cursor.execute(_WRITE_SQL, params)
    send_queued()  # in pipeline mode: the server starts on it now (see ``send_queued``)


def transfer(request: NewTransfer, *, now: dt.datetime) -> Result:
    """One transfer (a batch of one)."""
    return create_transfers([request], now=now)[0]


# --------------------------------------------------------------------------- holds lifecycle


def void_expired_pendings(*, now: dt.datetime, limit: int = 1000) -> int:
    """Void pending transfers whose timeout has passed. Idempotent: each void's id derives from
    its pending's id, so a repeated or concurrent run writes nothing twice. Returns how many."""
    expired = list(
        Transfer.objects.filter(kind=Kind.PENDING, expires_at__lte=now, resolution__isnull=True)
        .order_by("expires_at", "id")
        .values_list("id", flat=True)[:limit]
    )
    if not expired:
        return 0
    voids = [
        NewTransfer(
            id=uuid.uuid5(EXPIRY_NAMESPACE, str(p)), kind=Kind.VOID, pending_id=p, code=EXPIRY_CODE
        )
        for p in expired
    ]
    results = create_transfers(voids, now=now, _allow_expired=True)
    return sum(1 for r in results if r == Result.OK)


# --------------------------------------------------------------------------- tamper evidence


# A transfer's columns as SQL text for ``canonical.encode_row``: the sealer's and verifier's
# hot path.
ROW_SQL = (
    "t.id::text, t.kind, t.debit_account_id, t.credit_account_id, t.amount, t.currency, "
    "t.pending_id::text, t.timeout, t.linked, t.code, "
    "to_char(t.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
    "t.metadata::text"
)


def _try_lock(lock_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [lock_id])
        row = cursor.fetchone()
    return bool(row and row[0])


_QUEUE_SQL = (
    f"SELECT q.id, t.id, {ROW_SQL} FROM ledger_sealqueue q "  # noqa: S608 - constant SQL
    "JOIN ledger_transfer t ON t.id = q.transfer_id ORDER BY q.id LIMIT %s"
)
_SEALED_SQL = (
    f"SELECT s.seq, {ROW_SQL} FROM ledger_seal s "  # noqa: S608 - constant SQL
    "JOIN ledger_transfer t ON t.id = s.transfer_id WHERE s.seq BETWEEN %s AND %s ORDER BY s.seq"
)
_WRITE_SEALS_SQL = """
WITH s AS (
    INSERT INTO ledger_seal (seq, transfer_id, chain_hash, sealed_at)
    SELECT seq, transfer, hash, %(now)s::timestamptz
    FROM unnest(%(seqs)s::bigint[], %(transfers)s::uuid[], %(hashes)s::text[])
        AS x(seq, transfer, hash)
)
DELETE FROM ledger_sealqueue WHERE id = ANY(%(queue)s::bigint[])
"""


def seal(*, now: dt.datetime, limit: int = 50_000) -> int:
    """Give queued transfers their sequence numbers and chain hashes, in queue order, and sign a
    checkpoint every ``LEDGER_CHECKPOINT_EVERY`` transfers (or, for what is left, once
    ``LEDGER_CHECKPOINT_SECONDS`` have passed since the last). One sealer at a time (advisory
    lock); each transfer is encoded once. Returns how many were sealed."""
    every = settings.LEDGER_CHECKPOINT_EVERY
    with transaction.atomic():
        if not _try_lock(SEAL_LOCK):
            return 0
        head = Seal.objects.order_by("-seq").values_list("seq", "chain_hash").first()
        seq, chain_hash = (head[0], bytes.fromhex(head[1])) if head else (0, canonical.GENESIS)
        last = Checkpoint.objects.order_by("-number").first()
        with connection.cursor() as cursor:
            # Sealed since the last checkpoint: their leaves start the next checkpoint's tree.
            cursor.execute(_SEALED_SQL, [(last.last_seq + 1) if last else 1, seq])
            leaves = [canonical.leaf_hash(canonical.encode_row(r[0], r[1:])) for r in cursor]
            cursor.execute(_QUEUE_SQL, [limit])
            queue = cursor.fetchall()
        seqs: list[int] = []
        hashes: list[str] = []
        for _queue_id, _transfer_id, *row in queue:
            seq += 1
            encoding = canonical.encode_row(seq, row)
            chain_hash = canonical.chain(chain_hash, encoding)
            leaves.append(canonical.leaf_hash(encoding))
            seqs.append(seq)
            hashes.append(chain_hash.hex())
            if len(leaves) >= every:
                last = _checkpoint(now=now, last=last, last_seq=seq, leaves=leaves, head=chain_hash)
                leaves = []
        if queue:
            with connection.cursor() as cursor:
                cursor.execute(
                    _WRITE_SEALS_SQL,
                    {
                        "now": now,
                        "seqs": seqs,
                        "transfers": [q[1] for q in queue],
                        "hashes": hashes,
                        "queue": [q[0] for q in queue],
                    },
                )
        interval = dt.timedelta(seconds=settings.LEDGER_CHECKPOINT_SECONDS)
        if leaves and (last is None or now - last.created_at >= interval):
            _checkpoint(now=now, last=last, last_seq=seq, leaves=leaves, head=chain_hash)
    return len(queue)


def _checkpoint(
    *, now: dt.datetime, last: Checkpoint | None, last_seq: int, leaves: list[bytes], head: bytes
) -> Checkpoint:
    fields = canonical.CheckpointFields(
        number=(last.number + 1) if last else 1,
        first_seq=last_seq - len(leaves) + 1,
        last_seq=last_seq,
        merkle_root=canonical.merkle_root_of_leaf_hashes(leaves).hex(),
        previous_root=last.merkle_root if last else "",
        last_chain_hash=head.hex(),
    )
    key = signing_key()
    public = key.public_key().public_bytes_raw()
    return Checkpoint.objects.create(
        number=fields.number,
        first_seq=fields.first_seq,
        last_seq=fields.last_seq,
        merkle_root=fields.merkle_root,
        previous_root=fields.previous_root,
        last_chain_hash=fields.last_chain_hash,
        key_id=canonical.key_id(public),
        public_key=public.hex(),
        signature=key.sign(fields.message()).hex(),
        created_at=now,
    )
