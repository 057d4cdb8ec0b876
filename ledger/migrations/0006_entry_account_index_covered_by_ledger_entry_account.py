"""Entries lose the single-column index Django gives their account foreign key: ledger_entry_account
(account, id) leads with the column and serves every lookup by account. A clearing round writes two
entries per filled order (100,000 at 50,000 fills), each paying for every index; the foreign key
constraint stays."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("ledger", "0005_one_resolution_function"),
    ]

    operations = [
        migrations.AlterField(
            model_name="entry",
            name="account",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="ledger.account",
            ),
        ),
    ]
