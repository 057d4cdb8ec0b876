"""Give an application role what the ledger needs and nothing more: it may read and append to
transfers, entries, seals and checkpoints, but never UPDATE, DELETE or TRUNCATE them.

Run it as the database owner where the deployment uses a separate, less privileged role for the
application (the triggers refuse those changes either way).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import connection, transaction
from psycopg import sql

APPEND_ONLY = ["ledger_transfer", "ledger_entry", "ledger_seal", "ledger_checkpoint"]
WORKING = ["ledger_account", "ledger_sealqueue"]  # cached totals, the sealing outbox


class Command(BaseCommand):
    help = "Grant an application role append-only access to the ledger tables."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", required=True)
        parser.add_argument("--create-role", action="store_true", help="create it (NOLOGIN)")

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        role = sql.Identifier(options["role"])

        def tables(names: list[str]) -> sql.Composed:
            return sql.SQL(", ").join(sql.Identifier(name) for name in names)

        statements = [
            sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(role),
            sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(tables(APPEND_ONLY), role),
            sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                tables(APPEND_ONLY), role
            ),
            sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                tables(WORKING), role
            ),
            sql.SQL("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {}").format(role),
        ]
        with connection.cursor() as cursor:
            if options["create_role"]:
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [options["role"]])
                if cursor.fetchone() is None:
                    cursor.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(role))
            for statement in statements:
                cursor.execute(statement)
        self.stdout.write(f"{options['role']}: append-only access to {', '.join(APPEND_ONLY)}")
