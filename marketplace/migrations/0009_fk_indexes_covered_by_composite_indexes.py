"""Drop the single-column indexes Django gives foreign keys where a composite index already leads
with the column (lease round, offer, pool, buyer and provider; order market and organization; the
order and offer of events). Every clearing round writes tens of thousands of leases and events and
rewrites every open order, each write paying for every index; the foreign key constraints stay."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0008_notifications"),
    ]

    operations = [
        migrations.AlterField(
            model_name="lease",
            name="buyer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="marketplace.organization",
            ),
        ),
        migrations.AlterField(
            model_name="lease",
            name="offer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="leases",
                to="marketplace.offer",
            ),
        ),
        migrations.AlterField(
            model_name="lease",
            name="pool",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="leases",
                to="marketplace.pool",
            ),
        ),
        migrations.AlterField(
            model_name="lease",
            name="provider",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="marketplace.organization",
            ),
        ),
        migrations.AlterField(
            model_name="lease",
            name="round",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="leases",
                to="marketplace.clearinground",
            ),
        ),
        migrations.AlterField(
            model_name="offerevent",
            name="offer",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="marketplace.offer",
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="market",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="marketplace.market",
            ),
        ),
        migrations.AlterField(
            model_name="order",
            name="organization",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="orders",
                to="marketplace.organization",
            ),
        ),
        migrations.AlterField(
            model_name="orderevent",
            name="order",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="marketplace.order",
            ),
        ),
    ]
