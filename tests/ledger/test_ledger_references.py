"""The ledger's references, checked once per statement (migration 0008), and a batch written as
part of its caller's own transaction (``open_batch``)."""

from __future__ import annotations

import uuid

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.transaction import TransactionManagementError

from ledger.db import send_queued
from ledger.models import Account, Entry, Kind, SealQueue, Transfer
from ledger.services import BULK_CHECKS, NewTransfer, Result, create_transfers, open_batch
from tests.fixtures.ledger import T0, hold, single, state, totals

MISSING_ACCOUNT = 2**40
INSERT_TRANSFER = (
    "INSERT INTO ledger_transfer (id, kind, debit_account_id, credit_account_id, amount, currency, "
    "pending_id, linked, code, metadata, created_at) VALUES (gen_random_uuid(), "
)
INSERT_ENTRIES = (
    "INSERT INTO ledger_entry (transfer_id, account_id, debits_pending, debits_posted, "
    "credits_pending, credits_posted, created_at) VALUES "
)


def everything() -> tuple[int, ...]:
    totals, transfers, entries = state()
    return (hash(tuple(totals)), transfers, entries, SealQueue.objects.count())


@pytest.mark.parametrize(
    ("sql", "missing"),
    [
        pytest.param(
            INSERT_TRANSFER
            + "'single', %(wallet)s, %(missing)s, 1, 'CNY', NULL, false, 0, '{}', now())",
            f"account {MISSING_ACCOUNT}",
            id="transfer-credit-account",
        ),
        pytest.param(
            INSERT_TRANSFER
            + "'single', %(missing)s, %(wallet)s, 1, 'CNY', NULL, false, 0, '{}', now())",
            f"account {MISSING_ACCOUNT}",
            id="transfer-debit-account",
        ),
        pytest.param(
            INSERT_TRANSFER + "'void', %(wallet)s, %(escrow)s, 1, 'CNY', "
            "'00000000-0000-0000-0000-000000000001', false, 0, '{}', now())",
            "pending transfer 00000000-0000-0000-0000-000000000001",
            id="transfer-pending",
        ),
        pytest.param(
            INSERT_ENTRIES + "(%(transfer)s, %(wallet)s, 0, 0, 0, 0, now()), "
            "('00000000-0000-0000-0000-000000000002', %(wallet)s, 0, 0, 0, 0, now())",
            "transfer 00000000-0000-0000-0000-000000000002",
            id="entry-transfer",
        ),
        pytest.param(
            INSERT_ENTRIES + "(%(transfer)s, %(wallet)s, 0, 0, 0, 0, now()), "
            "(%(transfer)s, %(missing)s, 0, 0, 0, 0, now())",
            f"account {MISSING_ACCOUNT}",
            id="entry-account",
        ),
        pytest.param(
            "INSERT INTO ledger_sealqueue (transfer_id) "
            "VALUES ('00000000-0000-0000-0000-000000000003')",
            "transfer 00000000-0000-0000-0000-000000000003",
            id="outbox-transfer",
        ),
    ],
)
@pytest.mark.parametrize("bulk", [False, True], ids=["row-checks", "statement-checks"])
def test_postgresql_refuses_a_reference_to_a_row_that_does_not_exist(
    books: dict[str, Account], sql: str, missing: str, bulk: bool
) -> None:
    params: dict[str, int | uuid.UUID] = {
        "wallet": books["wallet"].pk,
        "escrow": books["escrow"].pk,
        "transfer": Transfer.objects.get().pk,
        "missing": MISSING_ACCOUNT,
    }
    before = everything()

    with pytest.raises(IntegrityError, match=f"{missing} does not exist"), transaction.atomic():  # noqa: PT012
        if bulk:  # as the ledger's batch writer sets it
            connection.cursor().execute("SELECT set_config('ledger.bulk_checks', 'on', true)")
        connection.cursor().execute(sql, params)

    assert everything() == before  # the whole statement, its good rows too, is refused


def test_references_to_rows_of_the_same_statement_are_accepted(books: dict[str, Account]) -> None:
    """A hold and its post, their entries and outbox rows, written by one statement (a batch)."""
    held = hold(books, 700)
    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=held.id, amount=300)

    assert create_transfers([held, post], now=T0) == [Result.OK, Result.OK]

    assert Transfer.objects.get(pk=post.id).pending_id == held.id
    assert Entry.objects.filter(transfer_id__in=[held.id, post.id]).count() == 4
    assert SealQueue.objects.filter(transfer_id__in=[held.id, post.id]).count() == 2


def bulk_checks() -> str | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('ledger.bulk_checks', true)")
        setting: str | None = cursor.fetchone()[0]
        return setting


def test_a_large_batch_has_its_references_checked_per_statement(
    books: dict[str, Account],
) -> None:
    small = [single(books, "wallet", "payable", 1) for _ in range(BULK_CHECKS - 1)]
    large = [single(books, "wallet", "payable", 1) for _ in range(BULK_CHECKS)]

    assert create_transfers(small, now=T0) == [Result.OK] * len(small)
    assert bulk_checks() in (None, "")  # row by row
    assert create_transfers(large, now=T0) == [Result.OK] * len(large)
    assert bulk_checks() == "on"  # for the rest of the transaction

    assert totals(books["payable"]) == (0, 0, 0, 2 * BULK_CHECKS - 1)


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM ledger_account WHERE id = %(wallet)s",
        "UPDATE ledger_account SET id = id + 1000000 WHERE id = %(wallet)s",
    ],
)
def test_postgresql_keeps_every_ledger_account(books: dict[str, Account], sql: str) -> None:
    before = everything()

    with (
        pytest.raises(DatabaseError, match="transfers and entries refer to it"),
        transaction.atomic(),
    ):
        connection.cursor().execute(sql, {"wallet": books["wallet"].pk})

    assert everything() == before


def test_an_account_keeps_its_totals_updatable(books: dict[str, Account]) -> None:
    """The account trigger fires on a change of ``id`` only: the totals move as before."""
    assert create_transfers([single(books, "wallet", "payable", 250)], now=T0) == [Result.OK]

    assert totals(books["payable"]) == (0, 0, 0, 250)


# --------------------------------------------------------------------------- open_batch


def test_an_open_batch_gives_the_results_of_create_transfers(books: dict[str, Account]) -> None:
    first = single(books, "wallet", "payable", 1_000)
    assert create_transfers([first], now=T0) == [Result.OK]
    batch = [
        first,  # a replay
        single(books, "wallet", "payable", 10**9),  # more than the wallet holds
        hold(books, 500),
        single(books, "wallet", "usd", 1),  # another currency
    ]
    before = everything()

    with transaction.atomic():
        opened = open_batch(batch, now=T0)
        results = opened.write()
        with pytest.raises(RuntimeError, match="written"):
            opened.write()  # once: the checks ran against state that is now stale

    assert results == [
        Result.EXISTS,
        Result.INSUFFICIENT_FUNDS,
        Result.OK,
        Result.CURRENCY_MISMATCH,
    ]
    _totals, transfers, entries, queued = before
    assert everything()[1:] == (transfers + 1, entries + 2, queued + 1)  # the hold alone
    assert totals(books["escrow"]) == (0, 0, 500, 0)
    assert totals(books["payable"]) == (0, 0, 0, 1_000)


def test_an_open_batch_in_pipeline_mode_is_sent_whole_before_its_results(
    books: dict[str, Account],
) -> None:
    """psycopg hands a statement to libpq, which sends what the socket takes: a batch of
    thousands of holds (megabytes of parameters) is not all sent when ``execute`` returns, and
    ``send_queued`` (which ``write`` calls) sends the rest before going on."""
    holds = [hold(books, 1) for _ in range(5_000)]

    with transaction.atomic(), connection.connection.pipeline():
        opened = open_batch(holds, now=T0)
        assert opened.write() == [Result.OK] * len(holds)
        assert connection.connection.pgconn.flush() == 0  # nothing left to send

    assert totals(books["escrow"]) == (0, 0, 5_000, 0)


def test_libpq_keeps_part_of_a_large_statement_until_it_is_sent(db: None) -> None:
    """Why ``send_queued`` exists: in pipeline mode a statement with large parameters is still
    partly in libpq's buffer after ``execute``."""
    raw = connection.connection
    with transaction.atomic(), raw.pipeline(), raw.cursor() as cursor:
        cursor.execute("SELECT length(%s)", ["x" * 8_000_000])
        assert raw.pgconn.flush() == 1  # some is left: the socket is full
        send_queued()
        assert raw.pgconn.flush() == 0


@pytest.mark.usefixtures("committed_db")
def test_open_batch_runs_only_inside_the_callers_transaction() -> None:
    with pytest.raises(TransactionManagementError, match="caller's transaction"):
        open_batch([], now=T0)
