"""Two changes for the ledger's write path (a clearing round posts 50,000 holds in one batch):

- Transfers lose the single-column indexes of their account foreign keys. Nothing reads transfers
  by account (an account's movements are its entries, indexed by ledger_entry_account) and accounts
  are never deleted; every transfer paid for both indexes. The constraints stay.
- Accounts keep 40% of each page free (fillfactor 60). Every transfer rewrites its two
  accounts' totals, none of them indexed: with room on the page, PostgreSQL writes the new
  version beside the old one and touches no index (a heap-only update); on full pages each update
  went to another page and into both indexes. A round posting 49,000 order holds: 22,000 of the
  account rewrites heap-only at fillfactor 80, 48,800 at 60. Pages written from now on keep the
  room.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0006_entry_account_index_covered_by_ledger_entry_account'),
    ]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE ledger_account SET (fillfactor = 60)",
            "ALTER TABLE ledger_account RESET (fillfactor)",
        ),
        migrations.AlterField(
            model_name='transfer',
            name='credit_account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.account'),
        ),
        migrations.AlterField(
            model_name='transfer',
            name='debit_account',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='ledger.account'),
        ),
    ]
