"""Leases lose the index of their charge transfer: nothing looks leases up by it, and a round's
50,000 leases went into it at random places (transfer ids are random)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0011_lease_offer_pool_market'),
    ]

    operations = [
        migrations.AlterField(
            model_name='lease',
            name='charge_transfer_id',
            field=models.UUIDField(),
        ),
    ]
