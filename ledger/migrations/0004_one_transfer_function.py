"""``ledger_one_transfer``: one plain transfer (a ``single`` or a ``pending``, not linked) written
in one round trip, for ``services.create_transfers`` called with a batch of one.

It decides only the cases it can decide exactly as the service would, and leaves every other to
the service (returns NULL, having written nothing): an account that is missing or in another
currency, and an id that already exists (``exists`` and ``exists_with_different_fields`` are the
service's to tell apart). The service checks the request's own fields before calling it.

What it decides: ``ok`` (the transfer, its two entries, its sealing outbox row and both accounts'
new totals written), or the first limit a total would break, in the service's order (debit
account, then credit account; overflow, then the flags). The two accounts are locked once, in id
order, before anything is read, like every batch; the id is checked after the lock.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_totals_violation(
    dp numeric, dpo numeric, cp numeric, cpo numeric, flags integer
) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN greatest(dp + dpo, cp + cpo) > 9223372036854775807 THEN 'overflows_totals'
        WHEN flags & 1 = 1 AND dp + dpo > cpo THEN 'insufficient_funds'
        WHEN flags & 2 = 2 AND cp + cpo > dpo THEN 'exceeds_debits'
    END
$$;

CREATE OR REPLACE FUNCTION ledger_one_transfer(
    p_id uuid, p_kind text, p_debit bigint, p_credit bigint, p_amount bigint, p_timeout integer,
    p_expires_at timestamptz, p_code integer, p_metadata jsonb, p_now timestamptz
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d ledger_account%ROWTYPE;
    c ledger_account%ROWTYPE;
    r ledger_account%ROWTYPE;
    held bigint := CASE WHEN p_kind = 'pending' THEN p_amount ELSE 0 END;
    posted bigint := CASE WHEN p_kind = 'single' THEN p_amount ELSE 0 END;
    refused text;
BEGIN
    IF p_kind NOT IN ('single', 'pending') OR p_debit = p_credit OR p_amount <= 0 THEN
        RETURN NULL;
    END IF;
    FOR r IN
        SELECT * FROM ledger_account WHERE id IN (p_debit, p_credit) ORDER BY id FOR UPDATE
    LOOP
        IF r.id = p_debit THEN d := r; ELSE c := r; END IF;
    END LOOP;
    IF d.id IS NULL OR c.id IS NULL OR d.currency <> c.currency THEN
        RETURN NULL;
    END IF;
    refused := coalesce(
        ledger_totals_violation(
            d.debits_pending::numeric + held, d.debits_posted::numeric + posted,
            d.credits_pending, d.credits_posted, d.flags),
        ledger_totals_violation(
            c.debits_pending, c.debits_posted,
            c.credits_pending::numeric + held, c.credits_posted::numeric + posted, c.flags));
    IF refused IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM ledger_transfer WHERE id = p_id) THEN
            RETURN NULL;
        END IF;
        RETURN refused;
    END IF;
    INSERT INTO ledger_transfer (id, kind, debit_account_id, credit_account_id, amount, currency,
        pending_id, timeout, expires_at, linked, code, metadata, created_at)
    VALUES (p_id, p_kind, p_debit, p_credit, p_amount, d.currency, NULL, p_timeout, p_expires_at,
        false, p_code, p_metadata, p_now)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN  -- the id exists (perhaps committed just now by a concurrent writer)
        RETURN NULL;
    END IF;
    INSERT INTO ledger_entry (transfer_id, account_id, debits_pending, debits_posted,
        credits_pending, credits_posted, created_at)
    VALUES (p_id, p_debit, held, posted, 0, 0, p_now), (p_id, p_credit, 0, 0, held, posted, p_now);
    INSERT INTO ledger_sealqueue (transfer_id) VALUES (p_id);
    UPDATE ledger_account
    SET debits_pending = debits_pending + held, debits_posted = debits_posted + posted
    WHERE id = p_debit;
    UPDATE ledger_account
    SET credits_pending = credits_pending + held, credits_posted = credits_posted + posted
    WHERE id = p_credit;
    RETURN 'ok';
END;
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS ledger_one_transfer(
    uuid, text, bigint, bigint, bigint, integer, timestamptz, integer, jsonb, timestamptz);
DROP FUNCTION IF EXISTS ledger_totals_violation(numeric, numeric, numeric, numeric, integer);
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0003_usage_events")]

    operations = [migrations.RunSQL(FUNCTION, DROP)]
