"""Order holds and lease escrows may not go below zero, like wallets (``DEFAULT_FLAGS``).

New accounts get the flag when they are opened; this sets it on existing ones. An account that
is already below zero (a development database that settled a phantom minute before the fix) keeps
no flag, since the database's check would refuse it, and ``verify_ledger`` does not list it: it
checks flagged accounts. ``make clean-var`` starts a development database afresh.
"""

from django.db import migrations

FLAG = 1  # AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS

FORWARD = f"""
UPDATE ledger_account SET flags = {FLAG}
WHERE purpose IN ('order_hold', 'lease_escrow') AND flags = 0
  AND credits_posted >= debits_posted + debits_pending
"""
BACKWARD = f"""
UPDATE ledger_account SET flags = 0
WHERE purpose IN ('order_hold', 'lease_escrow') AND flags = {FLAG}
"""


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0010_references_checked_per_row_or_statement"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
