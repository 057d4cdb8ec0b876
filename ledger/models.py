"""The ledger's tables. Transfers, entries, seals and checkpoints are append-only: PostgreSQL
triggers refuse UPDATE, DELETE and TRUNCATE (migration 0002), and the models refuse to save an
existing row or delete one. Only ``services`` writes here.

Accounts hold cached totals (TigerBeetle's four: debits/credits × pending/posted) updated in the
same transaction as the entries that move them; ``verify_ledger`` checks they equal the entries.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _


class AppendOnlyError(RuntimeError):
    """Ledger rows are never changed or removed; corrections are new transfers."""


class AppendOnlyQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only")


class AppendOnly(models.Model):
    objects: ClassVar[models.Manager[Any]] = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only")


class Purpose(models.TextChoices):
    WALLET = "wallet", _("Wallet")
    ORDER_HOLD = "order_hold", _("Order hold")
    LEASE_ESCROW = "lease_escrow", _("Lease escrow")
    PROVIDER_PAYABLE = "provider_payable", _("Provider payable")
    PLATFORM_FEE_REVENUE = "platform_fee_revenue", _("Platform fee revenue")
    SLA_CREDIT_EXPENSE = "sla_credit_expense", _("SLA credit expense")
    STRIPE_CLEARING = "stripe_clearing", _("Stripe clearing")
    PAYOUTS_IN_TRANSIT = "payouts_in_transit", _("Payouts in transit")
    VOUCHER_FUND = "voucher_fund", _("Voucher fund")
    ADJUSTMENT = "adjustment", _("Adjustment")


class AccountFlags(models.IntegerChoices):
    NONE = 0, _("None")
    # The account may not go into debit: a buyer's wallet cannot spend money it does not have.
    DEBITS_MUST_NOT_EXCEED_CREDITS = 1, _("Debits must not exceed credits")
    # The account may not go into credit: e.g. a clearing account that only passes money through.
    CREDITS_MUST_NOT_EXCEED_DEBITS = 2, _("Credits must not exceed debits")


class Account(models.Model):
    """An account of one owner and purpose in one currency. ``owner`` and ``reference`` are opaque
    strings chosen by the caller (``org:<uuid>``, ``order:<uuid>``, ``platform``); the ledger
    never looks inside them."""

    owner = models.CharField(max_length=100)
    purpose = models.CharField(max_length=32, choices=Purpose.choices)
    reference = models.CharField(max_length=100, blank=True, default="")
    currency = models.CharField(max_length=3)
    flags = models.PositiveSmallIntegerField(default=0)
    debits_pending = models.BigIntegerField(default=0)
    debits_posted = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    credits_posted = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "purpose", "reference", "currency"], name="ledger_account_unique"
            ),
            models.CheckConstraint(
                condition=Q(
                    debits_pending__gte=0,
                    debits_posted__gte=0,
                    credits_pending__gte=0,
                    credits_posted__gte=0,
                ),
                name="ledger_account_totals_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(flags__lte=3) & ~Q(flags=3), name="ledger_account_flags_valid"
            ),
            # The flags hold in the database too, as the last line of defence behind the service.
            models.CheckConstraint(
                condition=~Q(flags=1)
                | Q(credits_posted__gte=F("debits_posted") + F("debits_pending")),
                name="ledger_account_debits_within_credits",
            ),
            models.CheckConstraint(
                condition=~Q(flags=2)
                | Q(debits_posted__gte=F("credits_posted") + F("credits_pending")),
                name="ledger_account_credits_within_debits",
            ),
        ]

    def __str__(self) -> str:
        suffix = f" {self.reference}" if self.reference else ""
        return f"#{self.pk} {self.owner} {self.purpose}{suffix} {self.currency}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("account totals change only through transfers")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnlyError("accounts are never deleted")


class Kind(models.TextChoices):
    SINGLE = "single", _("Single")
    PENDING = "pending", _("Pending (hold)")
    POST = "post", _("Post (capture)")
    VOID = "void", _("Void")


class Transfer(AppendOnly):
    """One movement of money from ``debit_account`` to ``credit_account``.

    ``id`` is chosen by the caller: retrying with the same id and fields is a no-op (``exists``).
    A ``post`` or ``void`` names the ``pending`` transfer it resolves, at most once (UNIQUE).
    """

    id = models.UUIDField(primary_key=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Not indexed: an account's movements are read through its entries (ledger_entry_account),
    # and accounts are never deleted, so nothing looks transfers up by account.
    # References are checked by triggers, not foreign keys: per row, or per statement for a large
    # batch (migrations 0008, 0010).
    debit_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    credit_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    amount = models.BigIntegerField()
    currency = models.CharField(max_length=3)
    pending = models.OneToOneField(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="resolution",
        db_constraint=False,
    )
    timeout = models.PositiveIntegerField(null=True, blank=True, help_text="seconds (pending)")
    expires_at = models.DateTimeField(null=True, blank=True)
    linked = models.BooleanField(default=False)
    code = models.PositiveIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(amount__gt=0), name="ledger_transfer_amount_positive"
            ),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")),
                name="ledger_transfer_accounts_differ",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=[Kind.SINGLE, Kind.PENDING], pending__isnull=True)
                | Q(kind__in=[Kind.POST, Kind.VOID], pending__isnull=False),
                name="ledger_transfer_pending_reference",
            ),
            models.CheckConstraint(
                condition=Q(kind=Kind.PENDING) | Q(timeout__isnull=True, expires_at__isnull=True),
                name="ledger_transfer_timeout_only_on_pending",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(kind="pending", expires_at__isnull=False),
                name="ledger_pending_expiry",
            ),
        ]

    def __str__(self) -> str:
        accounts = f"#{self.debit_account_id}→#{self.credit_account_id}"
        return f"{self.kind} {self.amount} {self.currency} {accounts}"


class Entry(AppendOnly):
    """One side of a transfer on one account: signed changes to the account's four totals."""

    id = models.BigAutoField(primary_key=True)
    # References checked by triggers (migrations 0008, 0010). Entries are read by account
    # (ledger_entry_account) or all together (verification): no index by transfer, whose random
    # ids made every entry an insert at a random place of it (migration 0009).
    transfer = models.ForeignKey(
        Transfer,
        on_delete=models.PROTECT,
        related_name="entries",
        db_constraint=False,
        db_index=False,
    )
    account = models.ForeignKey(  # ledger_entry_account leads with it
        Account,
        on_delete=models.PROTECT,
        related_name="entries",
        db_index=False,
        db_constraint=False,
    )
    debits_pending = models.BigIntegerField(default=0)
    debits_posted = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    credits_posted = models.BigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["account", "id"], name="ledger_entry_account")]

    def __str__(self) -> str:
        return f"entry {self.pk} of {self.transfer_id}"


class SealQueue(models.Model):
    """Outbox of transfers not sealed yet, written in the transfer's own transaction; the sealer
    takes rows in order and deletes them (this table, alone in the ledger, is a work queue)."""

    id = models.BigAutoField(primary_key=True)
    transfer = models.OneToOneField(  # checked by triggers (migrations 0008, 0010)
        Transfer, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )

    def __str__(self) -> str:
        return f"unsealed {self.transfer_id}"


class Seal(AppendOnly):
    """A transfer's place in the hash chain: contiguous ``seq`` from 1 and the chain hash."""

    seq = models.BigIntegerField(primary_key=True)
    transfer = models.OneToOneField(Transfer, on_delete=models.PROTECT, related_name="seal")
    chain_hash = models.CharField(max_length=64)
    sealed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"seal {self.seq}"


class Checkpoint(AppendOnly):
    """A signed Merkle root over seals ``first_seq..last_seq``, linked to the previous root."""

    number = models.BigIntegerField(primary_key=True)
    first_seq = models.BigIntegerField()
    last_seq = models.BigIntegerField()
    merkle_root = models.CharField(max_length=64)
    previous_root = models.CharField(max_length=64, blank=True)
    last_chain_hash = models.CharField(max_length=64)
    key_id = models.CharField(max_length=16)
    public_key = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(last_seq__gte=F("first_seq")), name="ledger_checkpoint_range"
            ),
        ]

    def __str__(self) -> str:
        return f"checkpoint {self.number} ({self.first_seq}–{self.last_seq})"


class UsageEvent(AppendOnly):
    """A metering event (CloudEvents fields) about an opaque subject such as ``lease:<uuid>``.

    ``(source, event_id)`` is unique forever: a replayed event is recognized, never counted twice.
    Events are never edited; one that arrives after its period was settled is counted by the next
    settlement as an adjustment (settlements count events by ``id``, not by ``time``).
    """

    source = models.CharField(max_length=200)  # CloudEvents ``source``: the reporting agent
    event_id = models.CharField(max_length=200)  # CloudEvents ``id``
    type = models.CharField(max_length=100)  # e.g. ``com.suanli.heartbeat``
    subject = models.CharField(max_length=100)  # e.g. ``lease:<uuid>``
    time = models.DateTimeField()  # when it happened, by the agent's clock
    data = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["source", "event_id"], name="usage_event_unique"),
        ]
        indexes = [models.Index(fields=["subject", "type", "id"], name="usage_event_subject")]

    def __str__(self) -> str:
        return f"{self.type} {self.subject} at {self.time}"
