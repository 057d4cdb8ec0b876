"""The ledger's references are checked once per statement instead of once per row.

A foreign key is checked by a trigger per row and per key: a query on the referenced table,
2-3 µs each. A clearing round writes 50,000 transfers, 100,000 entries and 50,000 outbox rows in
one statement: 400,000 checks, 1.3 s of the round. Here each table gets one trigger per statement
instead, which looks every new row's references up at once (an anti-join over the statement's
new rows), and raises PostgreSQL's foreign_key_violation (Django's IntegrityError) naming the
first missing one: a transfer's accounts and pending transfer, an entry's transfer and account,
an outbox row's transfer.

What a row-level foreign key also does, keeping the referenced row from being deleted or its key
changed, holds here without it: transfers and entries refuse UPDATE and DELETE (migration 0002),
and accounts now refuse DELETE and any change of ``id``. A referenced row, once seen, exists for
good, so the check needs no lock on it. A row written by a transaction that has not committed is
not seen: the check fails where a foreign key would wait (the ledger's writers lock the accounts
first and refuse a missing one before writing, so it does not arise).
"""

import django.db.models.deletion
from django.db import migrations, models


CHECKS = {
    "ledger_transfer": """
        SELECT format('account %s', r.id) FROM (
            SELECT debit_account_id AS id FROM new_rows UNION SELECT credit_account_id FROM new_rows
        ) r
        WHERE NOT EXISTS (SELECT FROM ledger_account a WHERE a.id = r.id)
        UNION ALL
        SELECT format('pending transfer %s', n.pending_id) FROM new_rows n
        WHERE n.pending_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM ledger_transfer t WHERE t.id = n.pending_id)
    """,
    "ledger_entry": """
        SELECT format('transfer %s', n.transfer_id) FROM new_rows n
        WHERE NOT EXISTS (SELECT FROM ledger_transfer t WHERE t.id = n.transfer_id)
        UNION ALL
        SELECT format('account %s', r.id) FROM (SELECT DISTINCT account_id AS id FROM new_rows) r
        WHERE NOT EXISTS (SELECT FROM ledger_account a WHERE a.id = r.id)
    """,
    "ledger_sealqueue": """
        SELECT format('transfer %s', n.transfer_id) FROM new_rows n
        WHERE NOT EXISTS (SELECT FROM ledger_transfer t WHERE t.id = n.transfer_id)
    """,
}


def check(table: str, query: str) -> str:
    return f"""
    CREATE FUNCTION {table}_references() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        missing text;
    BEGIN
        {query.strip()}
        LIMIT 1 INTO missing;
        IF missing IS NOT NULL THEN
            RAISE EXCEPTION 'insert into {table}: % does not exist', missing
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        RETURN NULL;
    END;
    $$;
    CREATE TRIGGER {table}_references AFTER INSERT ON {table}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {table}_references();
    """


def uncheck(table: str) -> str:
    return f"""
    DROP TRIGGER IF EXISTS {table}_references ON {table};
    DROP FUNCTION IF EXISTS {table}_references();
    """


# Accounts are referenced by every transfer and entry: they are never deleted, nor renumbered.
# TRUNCATE goes through ledger_refuse_change (migration 0002): only a superuser's test flush.
KEEP_ACCOUNTS = """
CREATE FUNCTION ledger_account_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'ledger account %: % refused, transfers and entries refer to it', OLD.id, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER ledger_account_keep BEFORE DELETE OR UPDATE OF id ON ledger_account
    FOR EACH ROW EXECUTE FUNCTION ledger_account_keep();
CREATE TRIGGER ledger_account_no_truncate BEFORE TRUNCATE ON ledger_account
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
"""
UNKEEP_ACCOUNTS = """
DROP TRIGGER IF EXISTS ledger_account_keep ON ledger_account;
DROP TRIGGER IF EXISTS ledger_account_no_truncate ON ledger_account;
DROP FUNCTION IF EXISTS ledger_account_keep();
"""


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0007_transfer_account_indexes_and_account_fillfactor'),
    ]

    operations = [
        migrations.RunSQL(KEEP_ACCOUNTS, UNKEEP_ACCOUNTS),
        *[migrations.RunSQL(check(t, q), uncheck(t)) for t, q in CHECKS.items()],
        migrations.AlterField(
            model_name='entry',
            name='account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='ledger.account'),
        ),
        migrations.AlterField(
            model_name='entry',
            name='transfer',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='ledger.transfer'),
        ),
        migrations.AlterField(
            model_name='sealqueue',
            name='transfer',
            field=models.OneToOneField(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.transfer'),
        ),
        migrations.AlterField(
            model_name='transfer',
            name='credit_account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.account'),
        ),
        migrations.AlterField(
            model_name='transfer',
            name='debit_account',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.account'),
        ),
        migrations.AlterField(
            model_name='transfer',
            name='pending',
            field=models.OneToOneField(blank=True, db_constraint=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='resolution', to='ledger.transfer'),
        ),
    ]
