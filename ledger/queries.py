"""Reads of the ledger. Amounts are integer minor units; ``balance`` is credit-normal (credits
minus debits), which is how the exchange's wallets, escrows and payables are kept."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import QuerySet, Sum

from ledger.models import Account, Entry


@dataclass(frozen=True)
class Balance:
    currency: str
    posted: int  # credits_posted - debits_posted
    pending: int  # credits_pending - debits_pending (holds in, minus holds out)
    available: int  # posted - debits_pending: what may still be spent or held

    @classmethod
    def of(cls, account: Account) -> Balance:
        posted = account.credits_posted - account.debits_posted
        return cls(
            currency=account.currency,
            posted=posted,
            pending=account.credits_pending - account.debits_pending,
            available=posted - account.debits_pending,
        )


def balance(account_id: int) -> Balance:
    return Balance.of(Account.objects.get(pk=account_id))


def accounts_of(owner: str) -> QuerySet[Account]:
    return Account.objects.filter(owner=owner).order_by("currency", "purpose", "reference", "id")


def accounts_summary(owner: str) -> list[tuple[Account, Balance]]:
    return [(account, Balance.of(account)) for account in accounts_of(owner)]


@dataclass(frozen=True)
class StatementLine:
    at: dt.datetime
    transfer_id: str
    kind: str
    code: int
    debit: int  # posted debit on this account
    credit: int  # posted credit on this account
    pending_change: int  # change of (credits_pending - debits_pending)
    balance: int  # running posted balance after this line


@dataclass(frozen=True)
class Statement:
    account_id: int
    currency: str
    start: dt.datetime
    end: dt.datetime
    opening: int
    closing: int
    lines: list[StatementLine]


def statement(account_id: int, *, start: dt.datetime, end: dt.datetime) -> Statement:
    """Posted movements in ``[start, end)`` with a running balance from the opening balance."""
    account = Account.objects.get(pk=account_id)
    entries = Entry.objects.filter(account_id=account_id)
    before = entries.filter(created_at__lt=start).aggregate(
        c=Sum("credits_posted"), d=Sum("debits_posted")
    )
    running = opening = (before["c"] or 0) - (before["d"] or 0)
    lines = []
    for entry in (
        entries.filter(created_at__gte=start, created_at__lt=end)
        .select_related("transfer")
        .order_by("id")
    ):
        running += entry.credits_posted - entry.debits_posted
        lines.append(
            StatementLine(
                at=entry.created_at,
                transfer_id=str(entry.transfer_id),
                kind=entry.transfer.kind,
                code=entry.transfer.code,
                debit=entry.debits_posted,
                credit=entry.credits_posted,
                pending_change=entry.credits_pending - entry.debits_pending,
                balance=running,
            )
        )
    return Statement(account_id, account.currency, start, end, opening, running, lines)


CSV_HEADER = ["at", "transfer_id", "kind", "code", "debit", "credit", "pending_change", "balance"]


def statement_csv(statement: Statement) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for line in _rows(statement):
        writer.writerow(line)
    return buffer.getvalue()


def _rows(statement: Statement) -> Iterator[list[object]]:
    for line in statement.lines:
        yield [
            line.at.isoformat(),
            line.transfer_id,
            line.kind,
            line.code,
            line.debit,
            line.credit,
            line.pending_change,
            line.balance,
        ]
