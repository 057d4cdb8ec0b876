from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ledger.export import export_ledger


class Command(BaseCommand):
    help = "Write the sealed chain and checkpoints to DIR for offline verification."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path)

    def handle(self, *args: Any, **options: Any) -> None:
        transfers, checkpoints = export_ledger(options["directory"])
        self.stdout.write(f"exported {transfers} transfers and {checkpoints} checkpoints")
