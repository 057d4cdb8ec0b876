"""Verify the ledger: hash chain, checkpoints (Merkle roots, links, signatures), Σ = 0 per
currency, cached balances = entries, no flagged account beyond its flag (named). Exits non-zero
naming the first bad sequence number."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ledger.signing import public_key_bytes
from ledger.verify import verify


class Command(BaseCommand):
    help = "Verify the ledger's integrity; exit status 1 on the first problem."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--public-key",
            help="hex Ed25519 public key checkpoints must be signed with (default: this "
            "deployment's signing key)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        key = bytes.fromhex(options["public_key"]) if options["public_key"] else public_key_bytes()
        report = verify(public_key=key)
        if not report.ok:
            for problem in report.problems or []:
                self.stderr.write(problem)
            where = f" first bad seq {report.first_bad_seq}" if report.first_bad_seq else ""
            raise CommandError(f"ledger verification FAILED:{where}")
        self.stdout.write(
            f"ledger OK: {report.transfers} sealed transfers, {report.checkpoints} checkpoints"
        )
