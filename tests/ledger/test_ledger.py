"""The ledger: money, result codes, append-only storage, the hash chain, checkpoints, holds and
statements. Every refused transfer is checked to have moved nothing."""

from __future__ import annotations

import ast
import base64
import datetime as dt
import hashlib
import subprocess
import sys
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import override_settings

from ledger import canonical, queries
from ledger.export import export_ledger, verify_export
from ledger.models import (
    Account,
    AppendOnlyError,
    Checkpoint,
    Entry,
    Kind,
    Seal,
    SealQueue,
    Transfer,
)
from ledger.money import Money, MoneyError, cost, to_major, to_minor
from ledger.services import NewTransfer, Result, create_transfers, open_account, seal
from ledger.services import void_expired_pendings as expire
from ledger.signing import public_key_bytes
from ledger.verify import verify
from tests.fixtures import ROOT
from tests.fixtures.ledger import T0, hold, round_trips, single, state, totals

# --------------------------------------------------------------------------- money


def test_cost_rounds_half_to_even_in_minor_units() -> None:
    assert cost(Decimal("12.345"), 1, "CNY") == 1234  # 1234.5 → even
    assert cost(Decimal("12.355"), 1, "CNY") == 1236  # 1235.5 → even
    assert cost(Decimal("2.50"), Decimal("3.5"), "CNY") == 875
    assert cost(Decimal("0.333"), 3, "USD") == 100  # 99.9 → 100
    assert cost(Decimal("1500"), Decimal("0.5"), "JPY") == 750  # no minor units


def test_cost_is_monotonic_in_the_rate() -> None:
    rates = [Decimal(n) / 1000 for n in range(0, 5000, 7)]

    costs = [cost(rate, Decimal("2.5"), "CNY") for rate in rates]

    assert costs == sorted(costs)


def test_money_refuses_floats_fractions_and_unknown_currencies() -> None:
    with pytest.raises(MoneyError, match="Decimal or an int"):
        cost(12.5, 1, "CNY")  # type: ignore[arg-type]
    with pytest.raises(MoneyError, match="whole number of minor units"):
        to_minor(Decimal("1.005"), "CNY")
    with pytest.raises(MoneyError, match="unsupported currency"):
        cost(Decimal(1), 1, "XXX")
    with pytest.raises(MoneyError, match="cannot add"):
        Money(1, "CNY") + Money(1, "USD")
    assert to_minor(Decimal("12.34"), "CNY") == 1234
    assert to_major(1234, "CNY") == Decimal("12.34")
    assert str(Money(123456, "CNY")) == "1234.56 CNY"


def test_no_float_anywhere_in_the_ledger() -> None:
    offenders = []
    for path in sorted((ROOT / "ledger").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                offenders.append(f"{path.name}:{node.lineno} float literal")
            if isinstance(node, ast.Name) and node.id == "float":
                offenders.append(f"{path.name}:{node.lineno} float")
            if isinstance(node, ast.Attribute) and node.attr in {"FloatField", "fsum"}:
                offenders.append(f"{path.name}:{node.lineno} {node.attr}")

    assert offenders == []


# --------------------------------------------------------------------------- result codes


def test_ok_moves_money_and_writes_two_entries(books: dict[str, Account]) -> None:
    request = single(books, "wallet", "payable", 2_500, code=7, metadata={"lease": "L1"})

    assert create_transfers([request], now=T0) == [Result.OK]

    assert totals(books["wallet"]) == (0, 2_500, 0, 100_000)
    assert totals(books["payable"]) == (0, 0, 0, 2_500)
    row = Transfer.objects.get(pk=request.id)
    assert (row.amount, row.currency, row.code, row.metadata) == (2_500, "CNY", 7, {"lease": "L1"})
    assert Entry.objects.filter(transfer=row).count() == 2
    assert queries.balance(books["wallet"].pk) == queries.Balance("CNY", 97_500, 0, 97_500)


def test_retry_with_the_same_fields_is_exists_and_moves_nothing(books: dict[str, Account]) -> None:
    request = single(books, "wallet", "payable", 2_500)
    create_transfers([request], now=T0)
    before = state()

    assert create_transfers([request], now=T0 + dt.timedelta(hours=1)) == [Result.EXISTS]
    assert state() == before


def test_retry_with_different_fields_is_refused(books: dict[str, Account]) -> None:
    request = single(books, "wallet", "payable", 2_500)
    create_transfers([request], now=T0)
    before = state()

    changed = single(books, "wallet", "payable", 2_501, id=request.id)

    assert create_transfers([changed], now=T0) == [Result.EXISTS_WITH_DIFFERENT_FIELDS]
    assert state() == before


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda b: single(b, "wallet", "payable", 0), Result.AMOUNT_MUST_BE_POSITIVE),
        (lambda b: single(b, "wallet", "payable", -5), Result.AMOUNT_MUST_BE_POSITIVE),
        (lambda b: single(b, "wallet", "wallet", 5), Result.ACCOUNTS_MUST_BE_DIFFERENT),
        (lambda b: single(b, "wallet", "usd", 5), Result.CURRENCY_MISMATCH),
        (lambda b: single(b, "wallet", "payable", 100_001), Result.INSUFFICIENT_FUNDS),
        (
            lambda b: NewTransfer(
                id=uuid.uuid4(),
                debit_account_id=b["wallet"].pk,
                credit_account_id=999_999,
                amount=5,
            ),
            Result.ACCOUNT_NOT_FOUND,
        ),
        (
            lambda b: NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=uuid.uuid4()),
            Result.PENDING_NOT_FOUND,
        ),
        (
            lambda b: single(b, "wallet", "payable", 5, timeout=60),
            Result.TIMEOUT_RESERVED_FOR_PENDING,
        ),
        (
            lambda b: single(b, "wallet", "payable", 5, metadata={"rate": 1.5}),
            Result.METADATA_MUST_BE_PLAIN,
        ),
    ],
    ids=[
        "zero",
        "negative",
        "same-account",
        "currency",
        "overdraw",
        "unknown-account",
        "unknown-pending",
        "timeout-on-single",
        "float-metadata",
    ],
)
def test_bad_input_gets_its_code_and_moves_nothing(
    books: dict[str, Account], make: Any, code: Result
) -> None:
    before = state()

    assert create_transfers([make(books)], now=T0) == [code]
    assert state() == before


def test_a_hold_reduces_what_is_available_but_not_what_is_posted(books: dict[str, Account]) -> None:
    assert create_transfers([hold(books, 60_000)], now=T0) == [Result.OK]

    assert queries.balance(books["wallet"].pk) == queries.Balance("CNY", 100_000, -60_000, 40_000)
    assert create_transfers([single(books, "wallet", "payable", 40_001)], now=T0) == [
        Result.INSUFFICIENT_FUNDS
    ]


def test_partial_post_captures_part_and_releases_the_rest(books: dict[str, Account]) -> None:
    pending = hold(books, 60_000)
    create_transfers([pending], now=T0)

    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id, amount=45_000)

    assert create_transfers([post], now=T0) == [Result.OK]
    assert totals(books["wallet"]) == (0, 45_000, 0, 100_000)
    assert totals(books["escrow"]) == (0, 0, 0, 45_000)


def test_posting_more_than_the_hold_is_refused(books: dict[str, Account]) -> None:
    pending = hold(books, 60_000)
    create_transfers([pending], now=T0)
    before = state()

    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id, amount=60_001)

    assert create_transfers([post], now=T0) == [Result.EXCEEDS_PENDING_AMOUNT]
    assert state() == before


def test_a_voided_hold_cannot_be_posted_or_voided_again(books: dict[str, Account]) -> None:
    pending = hold(books, 60_000)
    void = NewTransfer(id=uuid.uuid4(), kind=Kind.VOID, pending_id=pending.id)
    create_transfers([pending, void], now=T0)
    before = state()

    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id)
    again = NewTransfer(id=uuid.uuid4(), kind=Kind.VOID, pending_id=pending.id)

    assert create_transfers([post, again], now=T0) == [Result.PENDING_ALREADY_RESOLVED] * 2
    assert state() == before
    assert totals(books["wallet"]) == (0, 0, 0, 100_000)


def test_a_post_must_not_name_other_accounts(books: dict[str, Account]) -> None:
    pending = hold(books, 1_000)
    create_transfers([pending], now=T0)

    post = NewTransfer(
        id=uuid.uuid4(),
        kind=Kind.POST,
        pending_id=pending.id,
        credit_account_id=books["payable"].pk,
    )

    assert create_transfers([post], now=T0) == [Result.PENDING_HAS_DIFFERENT_ACCOUNTS]


def test_a_linked_group_fails_together(books: dict[str, Account]) -> None:
    before = state()
    group = [
        single(books, "wallet", "payable", 1_000, linked=True),
        single(books, "wallet", "escrow", 2_000, linked=True),
        single(books, "wallet", "payable", 200_000),  # overdraws: the whole group fails
        single(books, "wallet", "payable", 10),  # not linked to the group: stands alone
    ]

    results = create_transfers(group, now=T0)

    assert results == [
        Result.LINKED_EVENT_FAILED,
        Result.LINKED_EVENT_FAILED,
        Result.INSUFFICIENT_FUNDS,
        Result.OK,
    ]
    assert Transfer.objects.filter(pk__in=[t.id for t in group[:3]]).count() == 0
    assert totals(books["wallet"]) == (0, 10, 0, 100_000)
    assert state()[1] == before[1] + 1


def test_a_linked_group_left_open_at_the_end_of_the_batch_fails(books: dict[str, Account]) -> None:
    before = state()

    results = create_transfers(
        [
            single(books, "wallet", "payable", 1, linked=True),
            single(books, "wallet", "payable", 2, linked=True),
        ],
        now=T0,
    )

    assert results == [Result.LINKED_EVENT_FAILED, Result.LINKED_EVENT_CHAIN_OPEN]
    assert state() == before


def test_a_replayed_linked_group_is_exists_throughout(books: dict[str, Account]) -> None:
    group = [
        single(books, "wallet", "payable", 1, linked=True),
        single(books, "wallet", "escrow", 2),
    ]
    create_transfers(group, now=T0)
    before = state()

    assert create_transfers(group, now=T0) == [Result.EXISTS, Result.EXISTS]
    assert state() == before


def test_a_batch_sees_its_own_earlier_transfers(books: dict[str, Account]) -> None:
    pending = hold(books, 5_000)
    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id)

    assert create_transfers([pending, post, pending], now=T0) == [
        Result.OK,
        Result.OK,
        Result.EXISTS,
    ]
    assert totals(books["escrow"]) == (0, 0, 0, 5_000)


def test_credits_must_not_exceed_debits_flag(books: dict[str, Account]) -> None:
    passthrough = open_account(
        owner="platform", purpose="payouts_in_transit", currency="CNY", now=T0, flags=2
    )
    request = NewTransfer(
        id=uuid.uuid4(),
        debit_account_id=books["wallet"].pk,
        credit_account_id=passthrough.pk,
        amount=5,
    )

    assert create_transfers([request], now=T0) == [Result.EXCEEDS_DEBITS]


def test_open_account_is_idempotent_and_wallets_are_protected(db: None) -> None:
    first = open_account(owner="org:x", purpose="wallet", currency="CNY", now=T0)
    again = open_account(owner="org:x", purpose="wallet", currency="CNY", now=T0)

    assert first.pk == again.pk
    assert first.flags == 1
    with pytest.raises(MoneyError):
        open_account(owner="org:x", purpose="wallet", currency="XXX", now=T0)


@pytest.mark.parametrize("purpose", ["order_hold", "lease_escrow"])
def test_an_order_hold_or_lease_escrow_may_not_go_below_zero(
    books: dict[str, Account], purpose: str
) -> None:
    held = open_account(owner="org:buyer", purpose=purpose, currency="CNY", now=T0, reference="x")
    assert held.flags == 1  # debits must not exceed credits, like a wallet
    books = {**books, "held": held}
    assert create_transfers([single(books, "wallet", "held", 500)], now=T0) == [Result.OK]
    before = state()

    lone = create_transfers([single(books, "held", "payable", 501)], now=T0)  # one round trip
    batch = create_transfers(  # the batch path: a good transfer, then one too many
        [single(books, "held", "payable", 300), single(books, "held", "wallet", 201)], now=T0
    )
    pending = create_transfers([single(books, "held", "payable", 501, kind=Kind.PENDING)], now=T0)

    assert lone == [Result.INSUFFICIENT_FUNDS]
    assert batch == [Result.OK, Result.INSUFFICIENT_FUNDS]
    assert pending == [Result.INSUFFICIENT_FUNDS]
    _, transfers, entries = state()
    assert (transfers, entries) == (before[1] + 1, before[2] + 2)  # only the 300 moved
    assert totals(held) == (0, 300, 0, 500)
    assert queries.balance(held.pk).posted == 200


def test_verify_ledger_names_a_flagged_account_beyond_its_flag(books: dict[str, Account]) -> None:
    create_transfers([single(books, "wallet", "payable", 70)], now=T0)
    seal(now=T0)
    payable = books["payable"]
    assert verify().ok

    with connection.cursor() as cursor:  # a superuser flags an account that stands in credit
        cursor.execute(
            "ALTER TABLE ledger_account DROP CONSTRAINT ledger_account_credits_within_debits"
        )
        cursor.execute("UPDATE ledger_account SET flags = 2 WHERE id = %s", [payable.pk])

    report = verify()

    assert report.problems == [
        f"account {payable.pk} (org:provider provider_payable CNY) may not go into credit "
        "but stands at 70"
    ]
    with pytest.raises(CommandError, match="FAILED"):
        call_command("verify_ledger")


# --------------------------------------------------------------------------- holds lifecycle


def test_expired_holds_are_voided_once(books: dict[str, Account]) -> None:
    pending = hold(books, 30_000, timeout=3600)
    create_transfers([pending], now=T0)

    early = expire(now=T0 + dt.timedelta(minutes=59))
    first = expire(now=T0 + dt.timedelta(hours=1))
    second = expire(now=T0 + dt.timedelta(hours=2))
    late_post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id)

    assert (early, first, second) == (0, 1, 0)
    assert totals(books["wallet"]) == (0, 0, 0, 100_000)
    void = Transfer.objects.get(pending_id=pending.id)
    assert (void.kind, void.code, void.amount) == (Kind.VOID, 1, 30_000)
    assert create_transfers([late_post], now=T0 + dt.timedelta(hours=2)) == [
        Result.PENDING_ALREADY_RESOLVED
    ]


def test_a_hold_cannot_be_posted_after_its_timeout(books: dict[str, Account]) -> None:
    pending = hold(books, 30_000, timeout=60)
    create_transfers([pending], now=T0)
    before = state()

    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id)

    assert create_transfers([post], now=T0 + dt.timedelta(seconds=60)) == [Result.PENDING_EXPIRED]
    assert state() == before


def test_beat_runs_the_sealer_often_enough_and_expires_holds() -> None:
    from django.conf import settings

    schedule: dict[str, dict[str, Any]] = settings.CELERY_BEAT_SCHEDULE
    assert schedule["ledger-seal"]["task"] == "ledger.tasks.seal"
    assert schedule["ledger-seal"]["schedule"] <= 5  # seconds: sealing lag stays within 5 s
    assert schedule["ledger-void-expired-holds"]["task"] == "ledger.tasks.void_expired_holds"


# --------------------------------------------------------------------------- append-only


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE ledger_transfer SET amount = amount + 1",
        "DELETE FROM ledger_transfer",
        "TRUNCATE ledger_transfer CASCADE",
        "UPDATE ledger_entry SET credits_posted = 0",
        "DELETE FROM ledger_entry",
        "TRUNCATE ledger_entry",
        "UPDATE ledger_seal SET chain_hash = ''",
        "DELETE FROM ledger_checkpoint",
    ],
)
def test_postgresql_refuses_changes_to_the_ledger(books: dict[str, Account], sql: str) -> None:
    seal(now=T0)
    before = state()
    seals = list(Seal.objects.values_list("seq", "chain_hash"))

    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else TRUNCATE trips on deferred FKs
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        connection.cursor().execute(sql)

    assert state() == before
    assert list(Seal.objects.values_list("seq", "chain_hash")) == seals


def test_models_refuse_changes_to_the_ledger(books: dict[str, Account]) -> None:
    row = Transfer.objects.get()
    entry = Entry.objects.first()
    assert entry is not None

    with pytest.raises(AppendOnlyError):
        row.save()
    with pytest.raises(AppendOnlyError):
        row.delete()
    with pytest.raises(AppendOnlyError):
        Transfer.objects.update(amount=1)
    with pytest.raises(AppendOnlyError):
        Entry.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        entry.save()
    with pytest.raises(AppendOnlyError):
        books["wallet"].save()
    with pytest.raises(AppendOnlyError):
        books["wallet"].delete()
    assert Transfer.objects.get().amount == 100_000


def test_an_application_role_without_privileges_cannot_change_the_ledger(
    books: dict[str, Account],
) -> None:
    call_command("ledger_privileges", "--role", "suanli_app_test", "--create-role")

    # The savepoint must see the error to roll back, so pytest.raises wraps it.
    with pytest.raises(DatabaseError, match="permission denied"):  # noqa: PT012, SIM117
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL ROLE suanli_app_test")
            cursor.execute("UPDATE ledger_transfer SET amount = 1")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE suanli_app_test")
        cursor.execute("SELECT count(*) FROM ledger_transfer")
        assert cursor.fetchone() == (1,)


# --------------------------------------------------------------------------- tamper evidence


def test_golden_vector_of_the_canonical_encoding() -> None:
    encoding = canonical.encode_transfer(
        seq=1,
        id="0b8f5a0e-2b1c-4d3e-9f00-112233445566",
        kind="pending",
        debit=3,
        credit=4,
        amount=123456,
        currency="CNY",
        pending=None,
        timeout=3600,
        linked=False,
        code=0,
        ts=dt.datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=dt.UTC),
        meta={"order": "o-1"},
    )

    assert encoding == (
        b'{"amount":123456,"code":0,"credit":4,"currency":"CNY","debit":3,'
        b'"id":"0b8f5a0e-2b1c-4d3e-9f00-112233445566","kind":"pending","linked":false,'
        b'"meta":{"order":"o-1"},"pending":null,"seq":1,"timeout":3600,'
        b'"ts":"2026-11-23T12:00:00.123456Z","v":1}'
    )
    head = canonical.chain(canonical.GENESIS, encoding)
    assert head.hex() == hashlib.sha256(bytes(32) + encoding).hexdigest()
    assert head.hex() == GOLDEN_CHAIN_HEAD


# Frozen: encoding v1 must never change (a new encoding gets a new version number).
GOLDEN_CHAIN_HEAD = "1a161e50296035ced03dac30545085a9561499b7ab66ad73c31e15b2cd389d19"


def test_merkle_root_matches_rfc6962_test_vectors() -> None:
    leaves = [
        bytes.fromhex(h)
        for h in [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
    ]

    assert canonical.merkle_root([]).hex() == hashlib.sha256(b"").hexdigest()
    assert canonical.merkle_root(leaves[:1]).hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert canonical.merkle_root(leaves).hex() == (
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    )


@override_settings(LEDGER_CHECKPOINT_EVERY=3, LEDGER_CHECKPOINT_SECONDS=3600)
def test_sealing_numbers_the_chain_and_checkpoints_are_signed(books: dict[str, Account]) -> None:
    create_transfers([single(books, "wallet", "payable", n) for n in range(1, 6)], now=T0)

    sealed = seal(now=T0)
    again = seal(now=T0)
    create_transfers([single(books, "wallet", "payable", 9)], now=T0)
    seal(now=T0 + dt.timedelta(minutes=1))

    assert (sealed, again) == (6, 0)
    assert list(Seal.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 8))
    assert SealQueue.objects.count() == 0
    checkpoints = list(Checkpoint.objects.order_by("number"))
    # every 3 transfers; then 1 new < 3 and 1 min < 1 h: not yet
    assert [(c.first_seq, c.last_seq) for c in checkpoints] == [(1, 3), (4, 6)]
    first = checkpoints[0]
    fields = canonical.CheckpointFields(
        first.number, first.first_seq, first.last_seq, first.merkle_root, "", first.last_chain_hash
    )
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    Ed25519PublicKey.from_public_bytes(public_key_bytes()).verify(
        bytes.fromhex(first.signature), fields.message()
    )
    report = verify(public_key=public_key_bytes())
    assert (report.ok, report.transfers, report.checkpoints) == (True, 7, 2)


@override_settings(LEDGER_CHECKPOINT_EVERY=2)
def test_verify_ledger_names_the_first_tampered_sequence(books: dict[str, Account]) -> None:
    create_transfers([single(books, "wallet", "payable", n) for n in (10, 20, 30)], now=T0)
    seal(now=T0)
    call_command("verify_ledger")  # clean before the edit
    target = Seal.objects.get(seq=3).transfer_id

    with connection.cursor() as cursor:  # a superuser going behind the triggers' back
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE ledger_transfer SET amount = 21 WHERE id = %s", [target])
        cursor.execute("SET LOCAL session_replication_role = origin")

    with pytest.raises(CommandError, match="first bad seq 3"):
        call_command("verify_ledger")


def test_verify_ledger_catches_an_edited_entry(books: dict[str, Account]) -> None:
    seal(now=T0)
    entry = Entry.objects.filter(account=books["wallet"]).first()
    assert entry is not None

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE ledger_entry SET credits_posted = 1 WHERE id = %s", [entry.pk])
        cursor.execute("SET LOCAL session_replication_role = origin")

    report = verify()
    assert not report.ok
    assert any("does not balance" in p for p in report.problems or [])
    assert any(f"account {books['wallet'].pk}" in p for p in report.problems or [])


def test_a_checkpoint_signed_by_another_key_fails(books: dict[str, Account]) -> None:
    seal(now=T0)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()

    assert verify(public_key=public_key_bytes()).ok
    report = verify(public_key=other)
    assert not report.ok and report.first_bad_seq == 1


@override_settings(LEDGER_CHECKPOINT_EVERY=2)
def test_an_export_verifies_offline_and_a_tampered_line_is_named(
    books: dict[str, Account], tmp_path: Path
) -> None:
    create_transfers([single(books, "wallet", "payable", n) for n in (1, 2, 3, 4)], now=T0)
    seal(now=T0)

    assert export_ledger(tmp_path) == (5, 2)
    key = public_key_bytes().hex()
    ok = subprocess.run(
        [sys.executable, "-m", "ledger.export", "verify", str(tmp_path), "--public-key", key],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    lines = (tmp_path / "transfers.jsonl").read_bytes().splitlines()
    lines[3] = lines[3].replace(b'"amount":3', b'"amount":4')
    (tmp_path / "transfers.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    assert (ok.returncode, ok.stdout.strip()) == (0, "OK: 5 transfers, 2 checkpoints")
    report = verify_export(tmp_path, public_key=public_key_bytes())
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_development_signing_key_lives_under_var(settings: Any) -> None:
    path = Path(settings.VAR_DIR) / "ledger-signing.key"

    public_key_bytes()

    assert len(base64.b64decode(path.read_text())) == 32
    assert path.stat().st_mode & 0o777 == 0o600


# --------------------------------------------------------------------------- queries


def test_statement_with_running_balance_and_csv(books: dict[str, Account]) -> None:
    later = T0 + dt.timedelta(days=1)
    pending = hold(books, 5_000)
    create_transfers([single(books, "wallet", "payable", 1_000)], now=later)
    create_transfers([pending], now=later + dt.timedelta(hours=1))
    create_transfers(
        [NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=pending.id, amount=4_000)],
        now=later + dt.timedelta(hours=2),
    )

    result = queries.statement(books["wallet"].pk, start=later, end=later + dt.timedelta(days=1))

    assert (result.opening, result.closing) == (100_000, 95_000)
    assert [
        (line.kind, line.debit, line.pending_change, line.balance) for line in result.lines
    ] == [
        ("single", 1_000, 0, 99_000),
        ("pending", 0, -5_000, 99_000),
        ("post", 4_000, 5_000, 95_000),
    ]
    csv_text = queries.statement_csv(result).splitlines()
    assert csv_text[0] == "at,transfer_id,kind,code,debit,credit,pending_change,balance"
    assert csv_text[-1].endswith(",post,0,4000,0,5000,95000")
    summary = {(a.purpose, a.currency): b.posted for a, b in queries.accounts_summary("org:buyer")}
    assert summary == {
        ("order_hold", "CNY"): 4_000,
        ("wallet", "CNY"): 95_000,
        ("wallet", "USD"): 0,
    }


def test_a_replay_is_exists_even_when_repeating_it_would_now_be_refused(
    books: dict[str, Account],
) -> None:
    drain = single(books, "wallet", "payable", 100_000)
    create_transfers([drain], now=T0)
    before = state()

    assert create_transfers([drain], now=T0) == [Result.EXISTS]
    assert state() == before


def test_the_fast_row_encoder_matches_the_reference_encoding(books: dict[str, Account]) -> None:
    pending = hold(books, 700, timeout=90, metadata={"order": "o-7", "n": 3, "nested": {"b": [1]}})
    post = NewTransfer(
        id=uuid.uuid4(),
        kind=Kind.POST,
        pending_id=pending.id,
        amount=500,
        code=42,
        metadata={"z": None, "a": "ünïcode"},
    )
    create_transfers([pending, post], now=T0 + dt.timedelta(microseconds=7))
    from ledger.services import ROW_SQL

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {ROW_SQL} FROM ledger_transfer t ORDER BY t.created_at, t.id")  # noqa: S608
        rows = cursor.fetchall()

    for seq, (row, stored) in enumerate(
        zip(rows, Transfer.objects.order_by("created_at", "id"), strict=True), start=1
    ):
        reference = canonical.encode_transfer(
            seq=seq,
            id=str(stored.pk),
            kind=stored.kind,
            debit=stored.debit_account_id,
            credit=stored.credit_account_id,
            amount=stored.amount,
            currency=stored.currency,
            pending=str(stored.pending_id) if stored.pending_id else None,
            timeout=stored.timeout,
            linked=stored.linked,
            code=stored.code,
            ts=stored.created_at,
            meta=stored.metadata,
        )
        assert canonical.encode_row(seq, row) == reference


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda b: single(b, "clearing", "payable", 2**63), Result.AMOUNT_TOO_LARGE),
        (lambda b: single(b, "wallet", "payable", 5, code=2**31), Result.CODE_OUT_OF_RANGE),
        (lambda b: hold(b, 5, timeout=2**31), Result.TIMEOUT_OUT_OF_RANGE),
        (lambda b: hold(b, 5, timeout=0), Result.TIMEOUT_OUT_OF_RANGE),
        (
            lambda b: single(b, "wallet", "payable", 5, metadata={"x": "\x00"}),
            Result.METADATA_MUST_BE_PLAIN,
        ),
        (
            lambda b: single(b, "wallet", "payable", 5, metadata={"x": 2**64}),
            Result.METADATA_MUST_BE_PLAIN,
        ),
    ],
    ids=["amount", "code", "timeout-huge", "timeout-zero", "nul", "huge-int"],
)
def test_out_of_range_input_gets_a_code_and_the_rest_of_the_batch_goes_through(
    books: dict[str, Account], make: Any, code: Result
) -> None:
    valid = single(books, "wallet", "payable", 7)

    assert create_transfers([valid, make(books)], now=T0) == [Result.OK, code]
    assert totals(books["payable"]) == (0, 0, 0, 7)


def test_totals_never_overflow(books: dict[str, Account]) -> None:
    big = 2**62
    first = single(books, "clearing", "payable", big)
    second = single(books, "clearing", "payable", big)

    assert create_transfers([first, second], now=T0) == [Result.OK, Result.OVERFLOWS_TOTALS]
    assert totals(books["payable"]) == (0, 0, 0, big)


def test_a_void_states_the_whole_hold_or_nothing(books: dict[str, Account]) -> None:
    pending = hold(books, 100)
    wrong = NewTransfer(id=uuid.uuid4(), kind=Kind.VOID, pending_id=pending.id, amount=99)
    right = NewTransfer(id=uuid.uuid4(), kind=Kind.VOID, pending_id=pending.id, amount=100)

    assert create_transfers([pending, wrong, right], now=T0) == [
        Result.OK,
        Result.VOID_AMOUNT_MISMATCH,
        Result.OK,
    ]
    replay = NewTransfer(id=right.id, kind=Kind.VOID, pending_id=pending.id, amount=1)
    assert create_transfers([replay], now=T0) == [Result.EXISTS_WITH_DIFFERENT_FIELDS]


def test_opening_an_account_with_other_flags_is_refused(books: dict[str, Account]) -> None:
    with pytest.raises(ValueError, match="exists with flags 1"):
        open_account(owner="org:buyer", purpose="wallet", currency="CNY", now=T0, flags=0)


# --------------------------------------------------------------------------- one transfer a call


def test_a_lone_transfer_is_one_statement_without_a_savepoint(books: dict[str, Account]) -> None:
    # given a hold placed inside a caller's transaction, as the order API does
    with transaction.atomic(), round_trips() as sent:
        # when it is a batch of one
        result = create_transfers([hold(books, 500, timeout=60)], now=T0)

    # then one statement decided and wrote it: no savepoint, no separate lock or read
    assert result == [Result.OK]
    assert len(sent) == 1
    assert sent[0].lstrip('"').startswith("SELECT ledger_one_transfer(")
    assert totals(books["wallet"]) == (500, 0, 0, 100_000)


def test_a_lone_post_or_void_is_one_statement(books: dict[str, Account]) -> None:
    # given two holds
    first, second = hold(books, 500), hold(books, 300)
    assert create_transfers([first, second], now=T0) == [Result.OK, Result.OK]

    # when one is posted in part and the other voided, each alone, inside a transaction
    post = NewTransfer(id=uuid.uuid4(), kind=Kind.POST, pending_id=first.id, amount=200)
    void = NewTransfer(id=uuid.uuid4(), kind=Kind.VOID, pending_id=second.id)
    with transaction.atomic(), round_trips() as sent:
        results = [create_transfers([post], now=T0), create_transfers([void], now=T0)]

    # then one statement each resolved its hold: 200 posted, the rest released
    assert results == [[Result.OK], [Result.OK]]
    assert len(sent) == 2
    assert all(s.lstrip('"').startswith("SELECT ledger_one_resolution(") for s in sent)
    assert totals(books["wallet"]) == (0, 200, 0, 100_000)
    assert totals(books["escrow"]) == (0, 0, 0, 200)
    assert Transfer.objects.get(pk=void.id).amount == 300


def test_a_lone_transfer_writes_what_a_batch_writes(books: dict[str, Account]) -> None:
    # given the same hold twice but for its id: once alone, once in a batch of two
    alone = hold(books, 500, timeout=60, code=3, metadata={"order": "o-1", "n": [1, 2]})
    batched = NewTransfer(**{**vars(alone), "id": uuid.uuid4()})
    other = single(books, "wallet", "payable", 1)

    # when both are written
    assert create_transfers([alone], now=T0) == [Result.OK]
    assert create_transfers([batched, other], now=T0) == [Result.OK, Result.OK]

    # then the transfer rows, entries and outbox rows match field for field
    def written(transfer_id: uuid.UUID) -> tuple[Any, ...]:
        row = Transfer.objects.filter(pk=transfer_id).values().get()
        del row["id"]
        entries = list(
            Entry.objects.filter(transfer_id=transfer_id)
            .order_by("id")
            .values_list(
                "account_id",
                "debits_pending",
                "debits_posted",
                "credits_pending",
                "credits_posted",
                "created_at",
            )
        )
        return row, entries, SealQueue.objects.filter(transfer_id=transfer_id).count()

    assert written(alone.id) == written(batched.id)
    assert written(alone.id)[0]["expires_at"] == T0 + dt.timedelta(seconds=60)
    assert totals(books["escrow"]) == (0, 0, 1_000, 0)

    # and so do the posts of the two holds, in part, alone and in a batch
    post_alone = NewTransfer(
        id=uuid.uuid4(), kind=Kind.POST, pending_id=alone.id, amount=120, code=4, metadata={"a": 1}
    )
    post_batched = replace(post_alone, id=uuid.uuid4(), pending_id=batched.id)
    assert create_transfers([post_alone], now=T0) == [Result.OK]
    assert create_transfers([post_batched, other], now=T0) == [Result.OK, Result.EXISTS]
    post_row, post_entries, queued = written(post_alone.id)
    batched_row, batched_entries, batched_queued = written(post_batched.id)
    assert post_row.pop("pending_id") == alone.id
    assert batched_row.pop("pending_id") == batched.id
    assert (post_row, post_entries, queued) == (batched_row, batched_entries, batched_queued)
    assert totals(books["escrow"]) == (0, 0, 0, 240)


def test_lone_transfers_never_overflow_totals(books: dict[str, Account]) -> None:
    big = 2**62
    assert create_transfers([single(books, "clearing", "payable", big)], now=T0) == [Result.OK]
    before = state()

    assert create_transfers([single(books, "clearing", "payable", big)], now=T0) == [
        Result.OVERFLOWS_TOTALS
    ]
    assert state() == before


def test_a_lone_replay_inside_a_transaction_leaves_it_usable(books: dict[str, Account]) -> None:
    # given a transfer written inside a caller's transaction
    request = single(books, "wallet", "payable", 700)
    with transaction.atomic():
        assert create_transfers([request], now=T0) == [Result.OK]
        before = state()

        # when it is sent again, the same and changed, in the same transaction
        with round_trips() as sent:
            same = create_transfers([request], now=T0)
        changed = create_transfers([replace(request, amount=701)], now=T0)

        # then each is told, nothing moved, and the transaction goes on
        assert (same, changed) == ([Result.EXISTS], [Result.EXISTS_WITH_DIFFERENT_FIELDS])
        assert state() == before
        # and the replay looked the id up without trying to write it first: the one-transfer
        # statement, then a savepoint, the lock, the lookup and the savepoint's release
        assert len(sent) == 5
        assert create_transfers([single(books, "wallet", "payable", 1)], now=T0) == [Result.OK]
    assert totals(books["payable"]) == (0, 0, 0, 701)


def test_opening_an_account_is_one_statement_whether_new_or_not(
    books: dict[str, Account],
) -> None:
    # given no account yet for an order's hold (and a transaction begun)
    def open_hold_account(now: dt.datetime) -> Account:
        return open_account(
            owner="org:y", purpose="order_hold", currency="CNY", reference="order:9", now=now
        )

    # when it is opened, and opened again
    with round_trips() as sent:
        created = open_hold_account(T0)
        again = open_hold_account(T0 + dt.timedelta(hours=1))

    # then one statement each created it and found it
    assert len(sent) == 2
    assert again.pk == created.pk
    assert Account.objects.filter(owner="org:y").count() == 1
    assert (created.flags, created.created_at, totals(created)) == (1, T0, (0, 0, 0, 0))
