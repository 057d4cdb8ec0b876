"""Entries lose their index by transfer. Nothing looks entries up by transfer (an account's are
read through ledger_entry_account, verification reads them all), no foreign key needs it since
transfers cannot be deleted (migration 0008), and transfer ids are random: each of the 100,000
entries of a clearing round went into it at a random place."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ledger', '0008_references_checked_per_statement'),
    ]

    operations = [
        migrations.AlterField(
            model_name='entry',
            name='transfer',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='entries', to='ledger.transfer'),
        ),
    ]
