"""PostgreSQL refuses UPDATE, DELETE and TRUNCATE on the ledger's append-only tables.

The one exception: a superuser who first sets ``ledger.allow_truncate = on`` in the session may
TRUNCATE (the test suite's database flush does; a superuser could drop the trigger anyway, so
this grants nothing new). An application role never can.
"""

from django.db import migrations

TABLES = ["ledger_transfer", "ledger_entry", "ledger_seal", "ledger_checkpoint"]

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE'
       AND current_setting('ledger.allow_truncate', true) = 'on'
       AND (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'ledger table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Corrections are new transfers.';
END;
$$;
"""


def triggers(table: str) -> str:
    return f"""
    CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
    CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table}
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
    """


def drop(table: str) -> str:
    return f"""
    DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table};
    DROP TRIGGER IF EXISTS {table}_no_truncate ON {table};
    """


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunSQL(FUNCTION, "DROP FUNCTION IF EXISTS ledger_refuse_change();"),
        *[migrations.RunSQL(triggers(table), drop(table)) for table in TABLES],
    ]
