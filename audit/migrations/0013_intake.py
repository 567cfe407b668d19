"""On PostgreSQL, an intake for events not sealed yet, moved into the log by the sealer in batches.

A writer's append was the event's row in the log (seven indexes, and the constraint tying its columns to
its content: a PL/pgSQL call whose set-up every one-row transaction pays again) plus its queue entry. Now
it is one row in ``audit_intake``, which has only its primary key, and the sealer moves the oldest
batch into the log, where each row is checked as a batch (``docs/benchmarks.md``, "Audit append").

- ``audit_intake`` INHERITS the log's table: the same columns (a column added to the log later is added
  to it too), numbered from the log's sequence, and every query of ``audit_auditevent`` (the ORM's
  included) sees its rows: an event is findable the moment it commits. Not its indexes, triggers or
  the content constraint: that one is added again here NO INHERIT (dropped, added NOT VALID, committed,
  validated, as in 0011 and 0012), so only the log proper carries it. Rows are never updated (a
  trigger refuses) and only the sealer's functions below take them out.
- ``audit_seal_batch`` seals what the old queue (``audit_pendingseal``) still holds first, then moves
  the intake's oldest rows, in id order, into the log (``audit_move_intake``) and seals them in the same
  transaction. A row whose digest is not its content's SHA-256 or is already in the log (or repeated in
  the batch), or whose columns do not match its content, is not moved: it goes to ``audit_rejected`` with the reason, which
  verification reports; so does a row whose content does not even parse as JSON (the move fails on it
  as a whole, and ``audit_reject_unparsable`` sets it aside). Both run with their owner's rights and
  only the sealer's role may call them: the sealer moves events into the log but cannot write one of its
  own there.

Nothing is done on SQLite (``make run``): there the writer still inserts into the log and the queue.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.db import migrations

CONSTRAINT = "audit_event_columns_match_content"
CHECK = """CHECK (audit_columns_match_content(
    canonical::jsonb, action, actor_kind, actor_id, actor_label, target_type, target_id, target_label,
    on_behalf_of, context, occurred_at, nonce))"""

SEAL_BATCH = """
CREATE OR REPLACE FUNCTION audit_seal_batch(lock_key bigint, batch integer)
RETURNS TABLE (out_sealed integer, out_head_seq bigint, out_waited double precision)
LANGUAGE plpgsql AS $$
DECLARE
    head_seq bigint;
    head_hash text;
    s bigint;
    p text;
    room integer;
    at timestamptz := clock_timestamp();
    -- The events this batch seals, in order: first from the old queue, then moved from the intake.
    ids bigint[];
    digests text[];
    times timestamptz[];
    moved_ids bigint[];
    moved_digests text[];
    moved_times timestamptz[];
    seqs bigint[] := '{}';
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
    -- Events in the log already, queued beside it (written before migration 0013).
    WITH taken AS (
        DELETE FROM audit_pendingseal q
         WHERE q.event_id IN (SELECT o.event_id FROM audit_pendingseal o ORDER BY o.event_id LIMIT batch)
        RETURNING q.event_id, q.digest, q.occurred_at
    )
    SELECT coalesce(array_agg(t.event_id ORDER BY t.event_id), '{}'),
           coalesce(array_agg(t.digest ORDER BY t.event_id), '{}'),
           coalesce(array_agg(t.occurred_at ORDER BY t.event_id), '{}')
      INTO ids, digests, times FROM taken t;
    room := batch - cardinality(ids);
    IF room > 0 THEN
        BEGIN
            SELECT array_agg(m.event_id ORDER BY m.event_id), array_agg(m.digest ORDER BY m.event_id),
                   array_agg(m.occurred_at ORDER BY m.event_id)
              INTO moved_ids, moved_digests, moved_times FROM audit_move_intake(room, at, false) m;
        EXCEPTION WHEN check_violation OR unique_violation OR invalid_text_representation
                    OR untranslatable_character THEN
            -- A row the log refuses (its columns do not match its content, its digest is there already)
            -- or whose content is not even JSON: only someone writing the intake by hand can make one.
            -- The same rows again, those whose content is not JSON set aside first (they no longer take
            -- a place in the batch), each of the others judged before it is moved.
            room := room - audit_reject_unparsable(room, at);
            SELECT array_agg(m.event_id ORDER BY m.event_id), array_agg(m.digest ORDER BY m.event_id),
                   array_agg(m.occurred_at ORDER BY m.event_id)
              INTO moved_ids, moved_digests, moved_times FROM audit_move_intake(room, at, true) m;
        END;
        ids := ids || coalesce(moved_ids, '{}');
        digests := digests || coalesce(moved_digests, '{}');
        times := times || coalesce(moved_times, '{}');
    END IF;
    IF cardinality(ids) = 0 THEN
        RETURN QUERY SELECT 0, head_seq, 0.0::float8;
        RETURN;
    END IF;
    s := head_seq;
    p := head_hash;
    FOR i IN 1 .. cardinality(ids) LOOP
        s := s + 1;
        seqs := seqs || s;
        prevs := prevs || p;
        p := encode(sha256(convert_to(s::text || '|' || p || '|' || digests[i], 'UTF8')), 'hex');
        hashes := hashes || p;
    END LOOP;
    INSERT INTO audit_seal (seq, event_id, prev_hash, hash, sealed_at)
        SELECT u.seq, u.event_id, u.prev_hash, u.hash, at FROM unnest(seqs, ids, prevs, hashes)
            AS u(seq, event_id, prev_hash, hash);
    UPDATE audit_chainhead SET seq = s, hash = p, sealed_at = at WHERE id = 1;
    RETURN QUERY SELECT (s - head_seq)::integer, s,
        greatest(extract(epoch FROM at - (SELECT min(t) FROM unnest(times) t))::float8, 0.0);
END
$$
"""

# The intake's oldest rows (up to ``room``) moved into the log if their digest is their content's SHA-256,
# else into audit_rejected with the reason. With ``judge``, also set aside first what the log would refuse
# (columns that do not match the content — NULL, a missing key, passes, as in the log's constraint — or
# a digest already there or repeated): the batch function moves without judging, the log's constraint and
# unique index checking each row, and judges only when that failed. Returns the moved events, oldest id
# first. SECURITY DEFINER (its owner's rights: the migrations' role), executable by the sealer's role alone
# (``audit.privileges``): the sealer may move events, not write any of its own into the log. Its search
# path is fixed to the tables' schema.
MOVE_INTAKE = """
CREATE OR REPLACE FUNCTION audit_move_intake(room integer, at timestamptz, judge boolean)
RETURNS TABLE (event_id bigint, digest text, occurred_at timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
WITH oldest_rows AS (
    SELECT o.id, o.digest,
           NOT judge OR audit_columns_match_content(
               o.canonical::jsonb, o.action, o.actor_kind, o.actor_id, o.actor_label, o.target_type,
               o.target_id, o.target_label, o.on_behalf_of, o.context, o.occurred_at, o.nonce
           ) IS NOT FALSE AS matches,
           o.digest = encode(sha256(convert_to(o.canonical, 'UTF8')), 'hex') AS addressed,
           judge AND EXISTS (SELECT FROM ONLY audit_auditevent e WHERE e.digest = o.digest) AS known,
           CASE WHEN judge THEN row_number() OVER (PARTITION BY o.digest ORDER BY o.id) ELSE 1 END AS nth
      FROM (SELECT * FROM audit_intake ORDER BY id LIMIT room) o
), judged AS (
    SELECT o.id, CASE
        WHEN NOT o.addressed THEN 'its digest is not the SHA-256 of its content'
        WHEN NOT o.matches THEN 'its columns do not match its content'
        WHEN o.known THEN 'its digest is already in the log'
        WHEN o.nth > 1 THEN 'its digest is repeated in the intake'
    END AS reason
    FROM oldest_rows o
), taken AS (
    DELETE FROM audit_intake i USING judged j WHERE i.id = j.id
    RETURNING i AS event, j.reason
), rejected AS (
    INSERT INTO audit_rejected (event_id, digest, reason, event, rejected_at)
    SELECT (t.event).id, (t.event).digest, t.reason, to_jsonb(t.event), at FROM taken t
     WHERE t.reason IS NOT NULL
), moved AS (
    INSERT INTO audit_auditevent SELECT (t.event).* FROM taken t WHERE t.reason IS NULL
    RETURNING id, digest, occurred_at
)
SELECT m.id, m.digest::text, m.occurred_at FROM moved m ORDER BY m.id
$$
"""

# The intake's oldest rows (up to ``room``) whose content PostgreSQL cannot parse as JSON, set aside in
# audit_rejected (the move above fails on them as a whole). One exception block per row: only run when
# the move has failed. Its owner's rights, the sealer's role alone may call it, as the move.
REJECT_UNPARSABLE = """
CREATE OR REPLACE FUNCTION audit_reject_unparsable(room integer, at timestamptz) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = {schema}, pg_temp AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT i.id, i.canonical FROM audit_intake i ORDER BY i.id LIMIT room LOOP
        BEGIN
            PERFORM r.canonical::jsonb;
        EXCEPTION WHEN invalid_text_representation OR untranslatable_character THEN
            WITH taken AS (DELETE FROM audit_intake i WHERE i.id = r.id RETURNING i AS event)
            INSERT INTO audit_rejected (event_id, digest, reason, event, rejected_at)
            SELECT (t.event).id, (t.event).digest, 'its content is not JSON', to_jsonb(t.event), at FROM taken t;
            n := n + 1;
        END;
    END LOOP;
    RETURN n;
END
$$
"""

FORWARD = [
    # The content constraint on the log proper only (the intake must not inherit it).
    f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {CONSTRAINT}",
    f"ALTER TABLE audit_auditevent ADD CONSTRAINT {CONSTRAINT} {CHECK} NO INHERIT NOT VALID",
    f"ALTER TABLE audit_auditevent VALIDATE CONSTRAINT {CONSTRAINT}",
    """CREATE TABLE audit_intake () INHERITS (audit_auditevent)""",
    "ALTER TABLE audit_intake ADD CONSTRAINT audit_intake_pkey PRIMARY KEY (id)",
    "ALTER TABLE audit_intake ALTER COLUMN id SET DEFAULT nextval(pg_get_serial_sequence('audit_auditevent', 'id'))",
    """CREATE TRIGGER audit_intake_no_update BEFORE UPDATE ON audit_intake
        FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_intake_no_truncate BEFORE TRUNCATE ON audit_intake
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TABLE audit_rejected (
        event_id bigint PRIMARY KEY,
        digest text NOT NULL,
        reason text NOT NULL,
        event jsonb NOT NULL,
        rejected_at timestamptz NOT NULL
    )""",
    """CREATE TRIGGER audit_rejected_no_update_delete BEFORE UPDATE OR DELETE ON audit_rejected
        FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()""",
    """CREATE TRIGGER audit_rejected_no_truncate BEFORE TRUNCATE ON audit_rejected
        FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()""",
    MOVE_INTAKE,
    "REVOKE ALL ON FUNCTION audit_move_intake(integer, timestamptz, boolean) FROM PUBLIC",
    REJECT_UNPARSABLE,
    "REVOKE ALL ON FUNCTION audit_reject_unparsable(integer, timestamptz) FROM PUBLIC",
    SEAL_BATCH,
]

# Back: whatever the intake holds goes into the log and the old queue first, so no event is lost.
BACKWARD = [
    """WITH taken AS (DELETE FROM audit_intake RETURNING *),
            moved AS (INSERT INTO audit_auditevent SELECT * FROM taken RETURNING id, digest, occurred_at)
       INSERT INTO audit_pendingseal (event_id, digest, occurred_at) SELECT id, digest, occurred_at FROM moved""",
    import_module("audit.migrations.0009_seal_batch_function").SEAL_BATCH,
    "DROP FUNCTION IF EXISTS audit_move_intake(integer, timestamptz, boolean)",
    "DROP FUNCTION IF EXISTS audit_reject_unparsable(integer, timestamptz)",
    "DROP TABLE IF EXISTS audit_intake",
    "DROP TABLE IF EXISTS audit_rejected",
    f"ALTER TABLE audit_auditevent DROP CONSTRAINT IF EXISTS {CONSTRAINT}",
    f"ALTER TABLE audit_auditevent ADD CONSTRAINT {CONSTRAINT} {CHECK} NOT VALID",
    f"ALTER TABLE audit_auditevent VALIDATE CONSTRAINT {CONSTRAINT}",
]


def forward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT quote_ident(current_schema())")
            (schema,) = cursor.fetchone()
        for statement in FORWARD:
            owned = statement in (MOVE_INTAKE, REJECT_UNPARSABLE)
            schema_editor.execute(statement.replace("{schema}", schema) if owned else statement)


def backward(apps: Any, schema_editor: Any) -> None:
    if schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM audit_rejected")
            (rejected,) = cursor.fetchone()
        if rejected:
            raise RuntimeError(f"audit_rejected holds {rejected} event(s): keep them before going back past 0013")
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    atomic = False  # as 0011 and 0012: the constraint's table lock only for an instant
    dependencies = [("audit", "0012_columns_match_content_plpgsql")]
    operations = [migrations.RunPython(forward, backward)]
