"""A lease's offer, pool and market: one composite foreign key instead of three.

(offer_id, pool_id, market_id) must be a row of marketplace_offer (whose (id, pool, market) is made
unique for it). One check per lease where there were three (a round writes 50,000 leases and a
foreign key costs 2-3 µs per row), and stronger: a lease's copies of its offer's pool and market
can no longer disagree with the offer, nor can the offer's pool or market change under its leases.
The pool and the market stay protected from deletion through the offer, which refers to both.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('marketplace', '0010_order_fillfactor'),
    ]

    operations = [
        migrations.AlterField(
            model_name='lease',
            name='market',
            field=models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.PROTECT, related_name='leases', to='marketplace.market'),
        ),
        migrations.AlterField(
            model_name='lease',
            name='offer',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='leases', to='marketplace.offer'),
        ),
        migrations.AlterField(
            model_name='lease',
            name='pool',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='leases', to='marketplace.pool'),
        ),
        migrations.AddConstraint(
            model_name='offer',
            constraint=models.UniqueConstraint(fields=('id', 'pool', 'market'), name='offer_pool_market_key'),
        ),
        # Django does not model a composite foreign key; it lives in SQL, after the unique key.
        migrations.RunSQL(
            "ALTER TABLE marketplace_lease ADD CONSTRAINT lease_offer_pool_market "
            "FOREIGN KEY (offer_id, pool_id, market_id) "
            "REFERENCES marketplace_offer (id, pool_id, market_id) "
            "DEFERRABLE INITIALLY DEFERRED",
            "ALTER TABLE marketplace_lease DROP CONSTRAINT lease_offer_pool_market",
        ),
    ]
