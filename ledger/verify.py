"""Verification of the ledger in the database: the hash chain and checkpoints (through the same
pure code an offline verifier uses), conservation per currency, cached balances = entries, and
flagged accounts within their flags."""

from __future__ import annotations

from collections.abc import Iterator

from django.db import connection, transaction

from ledger import canonical
from ledger.services import ROW_SQL

_CHAIN_SQL = (
    f"SELECT s.seq, s.chain_hash, {ROW_SQL} FROM ledger_seal s "  # noqa: S608 - constant SQL
    "JOIN ledger_transfer t ON t.id = s.transfer_id ORDER BY s.seq"
)


def chain_records() -> Iterator[tuple[int, bytes, str | None]]:
    # A server-side cursor streams a million rows without holding them all in memory.
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(_CHAIN_SQL)
        while rows := cursor.fetchmany(20_000):
            for seq, chain_hash, *row in rows:
                yield seq, canonical.encode_row(seq, row), chain_hash


def _checkpoints() -> tuple[list[canonical.CheckpointFields], dict[int, tuple[bytes, bytes]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT number, first_seq, last_seq, merkle_root, previous_root, last_chain_hash, "
            "signature, public_key FROM ledger_checkpoint ORDER BY number"
        )
        rows = cursor.fetchall()
    fields = [canonical.CheckpointFields(*row[:6]) for row in rows]
    signatures = {row[0]: (bytes.fromhex(row[6]), bytes.fromhex(row[7])) for row in rows}
    return fields, signatures


def verify(*, public_key: bytes | None = None) -> canonical.VerifyReport:
    report = canonical.VerifyReport()
    checkpoints, signatures = _checkpoints()
    canonical.verify_chain(chain_records(), checkpoints, signatures, public_key, report)
    with connection.cursor() as cursor:
        # Conservation: every transfer debits and credits the same amount in one currency.
        cursor.execute(
            "SELECT a.currency, SUM(e.credits_posted - e.debits_posted), "
            "SUM(e.credits_pending - e.debits_pending) FROM ledger_entry e "
            "JOIN ledger_account a ON a.id = e.account_id GROUP BY a.currency "
            "HAVING SUM(e.credits_posted - e.debits_posted) <> 0 "
            "OR SUM(e.credits_pending - e.debits_pending) <> 0"
        )
        for currency, posted, pending in cursor.fetchall():
            report.fail(f"{currency} does not balance: posted {posted}, pending {pending}")
        # Cached totals on accounts equal the sums of their entries.
        cursor.execute(
            "SELECT a.id FROM ledger_account a LEFT JOIN (SELECT account_id, "
            "SUM(debits_pending) dp, SUM(debits_posted) dpo, SUM(credits_pending) cp, "
            "SUM(credits_posted) cpo FROM ledger_entry GROUP BY account_id) e "
            "ON e.account_id = a.id WHERE a.debits_pending <> COALESCE(e.dp, 0) "
            "OR a.debits_posted <> COALESCE(e.dpo, 0) OR a.credits_pending <> COALESCE(e.cp, 0) "
            "OR a.credits_posted <> COALESCE(e.cpo, 0) ORDER BY a.id"
        )
        for (account_id,) in cursor.fetchall():
            report.fail(f"account {account_id}: cached totals differ from its entries")
        # Flagged accounts stay within their flags. The cached totals were just checked against
        # the entries, so reading them is reading the entries (and takes one pass over accounts).
        cursor.execute(
            "SELECT id, owner, purpose, reference, currency, "
            "credits_posted - debits_posted - debits_pending, "
            "debits_posted - credits_posted - credits_pending, flags & 1 = 1 "
            "FROM ledger_account WHERE (flags & 1 = 1 "
            "AND debits_pending + debits_posted > credits_posted) OR (flags & 2 = 2 "
            "AND credits_pending + credits_posted > debits_posted) ORDER BY id"
        )
        for pk, owner, purpose, reference, currency, net, reverse, debit_flag in cursor:
            name = f"{owner} {purpose}{' ' + reference if reference else ''} {currency}"
            if debit_flag and net < 0:
                report.fail(f"account {pk} ({name}) may not go below zero but stands at {net}")
            else:
                report.fail(
                    f"account {pk} ({name}) may not go into credit but stands at {-reverse}"
                )
        # Each transfer moves exactly its amount: one debit-side and one credit-side entry.
        cursor.execute(
            "SELECT s.seq FROM ledger_transfer t LEFT JOIN ledger_seal s ON s.transfer_id = t.id "
            "JOIN ledger_entry e ON e.transfer_id = t.id GROUP BY t.id, t.kind, t.amount, s.seq "
            "HAVING COUNT(*) <> 2 OR SUM(e.debits_posted + e.credits_posted) <> "
            "CASE WHEN t.kind IN ('single', 'post') THEN 2 * t.amount ELSE 0 END "
            "ORDER BY s.seq NULLS LAST LIMIT 10"
        )
        for (seq,) in cursor.fetchall():
            report.fail(f"entries do not match their transfer at seq {seq}", seq)
        cursor.execute(
            "SELECT COUNT(*) FROM ledger_transfer t WHERE NOT EXISTS "
            "(SELECT 1 FROM ledger_seal s WHERE s.transfer_id = t.id) AND NOT EXISTS "
            "(SELECT 1 FROM ledger_sealqueue q WHERE q.transfer_id = t.id)"
        )
        row = cursor.fetchone()
        if row and row[0]:
            report.fail(f"{row[0]} transfer(s) are neither sealed nor queued for sealing")
    return report
