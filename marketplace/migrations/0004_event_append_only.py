"""Order and offer events are append-only in PostgreSQL too (the ledger's trigger function)."""

from django.db import migrations

TABLES = ["marketplace_orderevent", "marketplace_offerevent"]


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
    dependencies = [("marketplace", "0003_market"), ("ledger", "0002_append_only_triggers")]

    operations = [migrations.RunSQL(triggers(t), drop(t)) for t in TABLES]
