"""A sealing batch in one call on PostgreSQL: ``audit_seal_batch(lock_key, batch)``.

The sealer's batch was eight round trips (the queue check, BEGIN, the lock, the head, taking the entries,
the seals, the head again, COMMIT). On a busy machine each round trip waits for both the sealer and its
backend to be scheduled again, so the sealing delay grew with the number of writers far more than the
work did. The function does the same in one statement, atomic by itself: take the sealer's transaction
lock (or seal nothing), lock the head (or say it is missing), take up to ``batch`` entries from the queue,
oldest id first, chain them from the head exactly as ``audit.hashing.chain_hash`` does
(``sha256("<seq>|<prev_hash>|<digest>")``, hex), insert the seals, move the head. SECURITY INVOKER: it can
do only what its caller's role may (the sealer's may; the application's may not).
"""

from typing import Any

from django.db import migrations

SEAL_BATCH = """
CREATE OR REPLACE FUNCTION audit_seal_batch(lock_key bigint, batch integer)
RETURNS TABLE (out_sealed integer, out_head_seq bigint, out_waited double precision)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    s bigint;
    p text;
    h text;
    r record;
    at timestamptz := clock_timestamp();
    oldest timestamptz;
    seqs bigint[] := '{}';
    ids bigint[] := '{}';
    prevs text[] := '{}';
    hashes text[] := '{}';
BEGIN
    IF NOT pg_try_advisory_xact_lock(lock_key) THEN
        -- Another sealer is at work: nothing to do here.
        RETURN QUERY SELECT 0, coalesce((SELECT c.seq FROM audit_chainhead c WHERE c.id = 1), 0), 0.0::float8;
        RETURN;
    END IF;
    SELECT c.seq, c.hash INTO head_seq, head_hash FROM audit_chainhead c WHERE c.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 0, NULL::bigint, 0.0::float8;  -- the caller stops: see audit.sealer.HeadMissing
        RETURN;
    END IF;
    s := head_seq;
    p := head_hash;
    FOR r IN
        WITH taken AS (
            DELETE FROM audit_pendingseal q
             WHERE q.event_id IN (SELECT o.event_id FROM audit_pendingseal o ORDER BY o.event_id LIMIT batch)
            RETURNING q.event_id, q.digest, q.occurred_at
        )
        SELECT t.event_id, t.digest, t.occurred_at FROM taken t ORDER BY t.event_id
    LOOP
        s := s + 1;
        h := encode(sha256(convert_to(s::text || '|' || p || '|' || r.digest, 'UTF8')), 'hex');
        seqs := seqs || s;
        ids := ids || r.event_id;
        prevs := prevs || p;
        hashes := hashes || h;
        p := h;
        oldest := least(coalesce(oldest, r.occurred_at), r.occurred_at);
    END LOOP;
    IF s = head_seq THEN
        RETURN QUERY SELECT 0, head_seq, 0.0::float8;
        RETURN;
    END IF;
    INSERT INTO audit_seal (seq, event_id, prev_hash, hash, sealed_at)
        SELECT u.seq, u.event_id, u.prev_hash, u.hash, at FROM unnest(seqs, ids, prevs, hashes)
            AS u(seq, event_id, prev_hash, hash);
    UPDATE audit_chainhead SET seq = s, hash = p, sealed_at = at WHERE id = 1;
    RETURN QUERY SELECT (s - head_seq)::integer, s, greatest(extract(epoch FROM at - oldest)::float8, 0.0);
END
$$
"""


def create(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(SEAL_BATCH)


def drop(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP FUNCTION IF EXISTS audit_seal_batch(bigint, integer)")


class Migration(migrations.Migration):
    dependencies = [("audit", "0008_leaner_indexes")]

    operations = [migrations.RunPython(create, drop)]
