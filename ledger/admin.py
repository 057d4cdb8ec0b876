"""The ledger in the admin: read-only, always. Corrections are new transfers made by services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from ledger.models import Account, Checkpoint, Entry, Seal, Transfer


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "owner",
        "purpose",
        "reference",
        "currency",
        "debits_posted",
        "credits_posted",
        "debits_pending",
        "credits_pending",
    ]
    list_filter = ["purpose", "currency"]
    search_fields = ["owner", "reference"]


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "debit_account",
        "credit_account",
        "amount",
        "currency",
        "code",
        "created_at",
    ]
    list_filter = ["kind", "currency"]
    search_fields = ["id"]


@admin.register(Entry)
class EntryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "transfer",
        "account",
        "debits_posted",
        "credits_posted",
        "debits_pending",
        "credits_pending",
        "created_at",
    ]


@admin.register(Seal)
class SealAdmin(ReadOnlyAdmin):
    list_display = ["seq", "transfer", "chain_hash", "sealed_at"]


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["number", "first_seq", "last_seq", "merkle_root", "key_id", "created_at"]
