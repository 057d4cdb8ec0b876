"""A lone transfer's references are checked row by row again; a large batch's, once per statement.

The per-statement checks of migration 0008 cost a statement about 0.1 ms however few its rows,
and a lone transfer is three statements (its row, its entries, its outbox row): 0.39 -> 0.50 ms a
call. So each table now has both checks, and the session setting ``ledger.bulk_checks`` chooses:
unset (the default), a trigger per row looks each reference up (as a foreign key would); ``on``
(set for its transaction by the ledger's batch writer before a batch of 32 transfers or more),
the trigger per statement looks all of the statement's references up at once. Either way every
row is checked. Only a statement that changed the setting while it ran could fall between the
two; the ledger's writers never do.
"""

from django.db import migrations

BULK = "current_setting('ledger.bulk_checks', true)"
REFERENCES = {  # table: (column, referenced table, what the error names)
    "ledger_transfer": (
        ("debit_account_id", "ledger_account", "account"),
        ("credit_account_id", "ledger_account", "account"),
        ("pending_id", "ledger_transfer", "pending transfer"),
    ),
    "ledger_entry": (
        ("transfer_id", "ledger_transfer", "transfer"),
        ("account_id", "ledger_account", "account"),
    ),
    "ledger_sealqueue": (("transfer_id", "ledger_transfer", "transfer"),),
}


def by_row(table: str) -> str:
    checks = "\n".join(
        f"""
        IF NEW.{column} IS NOT NULL AND NOT EXISTS (SELECT FROM {parent} WHERE id = NEW.{column})
        THEN
            RAISE EXCEPTION 'insert into {table}: {label} % does not exist', NEW.{column}
                USING ERRCODE = 'foreign_key_violation';
        END IF;"""
        for column, parent, label in REFERENCES[table]
    )
    return f"""
    CREATE FUNCTION {table}_reference() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN{checks}
        RETURN NULL;
    END;
    $$;
    CREATE TRIGGER {table}_reference AFTER INSERT ON {table}
        FOR EACH ROW WHEN ({BULK} IS DISTINCT FROM 'on')
        EXECUTE FUNCTION {table}_reference();
    DROP TRIGGER {table}_references ON {table};
    CREATE TRIGGER {table}_references AFTER INSERT ON {table}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT WHEN ({BULK} = 'on')
        EXECUTE FUNCTION {table}_references();
    """


def by_statement_only(table: str) -> str:
    return f"""
    DROP TRIGGER {table}_reference ON {table};
    DROP FUNCTION {table}_reference();
    DROP TRIGGER {table}_references ON {table};
    CREATE TRIGGER {table}_references AFTER INSERT ON {table}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {table}_references();
    """


class Migration(migrations.Migration):
    dependencies = [("ledger", "0009_entry_transfer_index")]

    operations = [
        migrations.RunSQL(by_row(table), by_statement_only(table)) for table in REFERENCES
    ]
