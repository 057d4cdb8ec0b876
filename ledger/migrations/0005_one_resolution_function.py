"""``ledger_one_resolution``: the ``post`` or ``void`` of one pending transfer (not linked) in
one round trip, for ``services.create_transfers`` called with a batch of one, as
``ledger_one_transfer`` (0004) does for a ``single`` or a ``pending``.

It decides only ``ok``: every refusal (no such pending transfer, other accounts named, already
resolved, expired, an amount the hold does not allow, an id that exists) is left to the service
(NULL, nothing written), which tells them apart. Releasing a hold and posting at most what it
held cannot break an account's limits; they are checked all the same, and a breach is left to
the service too. The pending transfer's two accounts are locked once, in id order, before the
id and the hold's resolution are read, like every batch.
"""

from django.db import migrations

FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_one_resolution(
    p_id uuid, p_kind text, p_pending uuid, p_debit bigint, p_credit bigint, p_amount bigint,
    p_code integer, p_metadata jsonb, p_now timestamptz
) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    p ledger_transfer%ROWTYPE;
    d ledger_account%ROWTYPE;
    c ledger_account%ROWTYPE;
    r ledger_account%ROWTYPE;
    posted bigint;
BEGIN
    SELECT * INTO p FROM ledger_transfer WHERE id = p_pending AND kind = 'pending';
    -- (a NULL account is not compared: the request names none)
    IF p.id IS NULL OR p_kind NOT IN ('post', 'void')
       OR p_debit <> p.debit_account_id OR p_credit <> p.credit_account_id
       OR p.expires_at <= p_now THEN
        RETURN NULL;
    END IF;
    IF p_kind = 'void' THEN
        IF p_amount IS NOT NULL AND p_amount <> p.amount THEN
            RETURN NULL;
        END IF;
        posted := 0;
    ELSE
        IF p_amount IS NOT NULL AND (p_amount <= 0 OR p_amount > p.amount) THEN
            RETURN NULL;
        END IF;
        posted := coalesce(p_amount, p.amount);
    END IF;
    FOR r IN
        SELECT * FROM ledger_account
        WHERE id IN (p.debit_account_id, p.credit_account_id) ORDER BY id FOR UPDATE
    LOOP
        IF r.id = p.debit_account_id THEN d := r; ELSE c := r; END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM ledger_transfer WHERE pending_id = p_pending)
       OR ledger_totals_violation(
            d.debits_pending::numeric - p.amount, d.debits_posted::numeric + posted,
            d.credits_pending, d.credits_posted, d.flags) IS NOT NULL
       OR ledger_totals_violation(
            c.debits_pending, c.debits_posted,
            c.credits_pending::numeric - p.amount, c.credits_posted::numeric + posted,
            c.flags) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO ledger_transfer (id, kind, debit_account_id, credit_account_id, amount, currency,
        pending_id, timeout, expires_at, linked, code, metadata, created_at)
    VALUES (p_id, p_kind, p.debit_account_id, p.credit_account_id,
        CASE WHEN p_kind = 'post' THEN posted ELSE p.amount END, p.currency, p_pending, NULL,
        NULL, false, p_code, p_metadata, p_now)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN  -- the id exists, or the hold was resolved (perhaps just now)
        RETURN NULL;
    END IF;
    INSERT INTO ledger_entry (transfer_id, account_id, debits_pending, debits_posted,
        credits_pending, credits_posted, created_at)
    VALUES (p_id, p.debit_account_id, -p.amount, posted, 0, 0, p_now),
        (p_id, p.credit_account_id, 0, 0, -p.amount, posted, p_now);
    INSERT INTO ledger_sealqueue (transfer_id) VALUES (p_id);
    UPDATE ledger_account
    SET debits_pending = debits_pending - p.amount, debits_posted = debits_posted + posted
    WHERE id = p.debit_account_id;
    UPDATE ledger_account
    SET credits_pending = credits_pending - p.amount, credits_posted = credits_posted + posted
    WHERE id = p.credit_account_id;
    RETURN 'ok';
END;
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS ledger_one_resolution(
    uuid, text, uuid, bigint, bigint, bigint, integer, jsonb, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_one_transfer_function")]

    operations = [migrations.RunSQL(FUNCTION, DROP)]
