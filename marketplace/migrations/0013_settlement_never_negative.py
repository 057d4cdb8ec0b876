"""Settlements never move money backwards: every amount is ≥ 0 (a correction is a positive
``adjustment``). The check is added NOT VALID, so a development database that still holds a
negative charge from the phantom-minute defect migrates; every new row is checked all the same."""

from django.db import migrations, models

COLUMNS = (
    "delivered_unit_seconds",
    "charge",
    "buyer_fee",
    "platform_fee",
    "sla_credit",
    "refund",
    "adjustment",
)


class Migration(migrations.Migration):
    dependencies = [
        ("marketplace", "0012_lease_charge_transfer_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="settlement",
            name="adjustment",
            field=models.BigIntegerField(default=0),
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE marketplace_settlement ADD CONSTRAINT "
                    "settlement_amounts_non_negative CHECK ("
                    + " AND ".join(f"{c} >= 0" for c in COLUMNS)
                    + ") NOT VALID",
                    "ALTER TABLE marketplace_settlement DROP CONSTRAINT "
                    "settlement_amounts_non_negative",
                )
            ],
            state_operations=[
                migrations.AddConstraint(
                    model_name="settlement",
                    constraint=models.CheckConstraint(
                        condition=models.Q(
                            ("adjustment__gte", 0),
                            ("buyer_fee__gte", 0),
                            ("charge__gte", 0),
                            ("delivered_unit_seconds__gte", 0),
                            ("platform_fee__gte", 0),
                            ("refund__gte", 0),
                            ("sla_credit__gte", 0),
                        ),
                        name="settlement_amounts_non_negative",
                    ),
                )
            ],
        ),
    ]
