-- Scale-out on Citus (doc/scale-out.md): workqueue.distribute() turns a
-- single-node install on a Citus coordinator into a distributed one.
--
--   definition tables  -> reference tables (a copy on every node)
--   per-item tables    -> distributed by queue, co-located with item
--   announce_state, scale_state stay local: each node's own state
--
-- Citus leaves the tables of an extension to the extension: CREATE EXTENSION
-- workqueue on the coordinator was propagated to every worker, so each
-- worker holds the same tables (as Citus' "shell" tables) and Citus neither
-- creates nor changes them when it distributes.  What it cannot do with them
-- has to be done here, on every node (the evidence is in doc/scale-out.md):
--
--  * foreign keys between the tables: create_reference_table() would first
--    turn every table connected by a foreign key into a Citus local table by
--    re-creating it, which fails for an extension's table ("relation
--    workflow_version already exists", "cannot drop view
--    workqueue.queue_stats because extension workqueue requires it").  They
--    are dropped on every node, the tables distributed, and the keys added
--    again on the coordinator, whence Citus adds them to every shard and to
--    the workers' tables;
--  * policies: sub-selects are refused on distributed tables; the
--    policies are made again in their function form (src/core/scopes.sql);
--  * the trigger on workflow_version: Citus refuses triggers on
--    distributed and reference tables (src/workflow/workflow.sql);
--  * identity sequences: Citus gives the sequences of the tables it creates
--    a range per node (group id << 48), not an extension's; without one, rows
--    inserted on a worker collide with the coordinator's ids.  The same
--    ranges are set here on every worker.

-- Is this install distributed?  (One row per node, src/scale/tables.sql.)
CREATE OR REPLACE FUNCTION workqueue._distributed() RETURNS boolean
    LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus')
$$;

-- What a worker needs, as one command for run_command_on_workers(): without
-- DDL propagation (the worker's tables are the extension's, the coordinator
-- sends the shards' DDL itself), the drops, the mode row, the policies in
-- their distributed form, and the identity range of the worker's group (set
-- once: restarting a range in use would repeat ids).  One statement, not a
-- list: run_command_on_workers() returns with the first result of a list,
-- before the worker has committed it, and the coordinator's next command on
-- that worker then still saw a dropped foreign key ("constraint ... already
-- exists"), now and then.
CREATE OR REPLACE FUNCTION workqueue._distribute_worker_command(drops text[]) RETURNS text
    LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $fn$
    SELECT concat($cmd$DO $do$
DECLARE
    lo bigint := ((SELECT groupid FROM pg_dist_local_group)::bigint << 48) + 1;
    hi bigint;
    s record;
BEGIN
    PERFORM set_config('citus.enable_ddl_propagation', 'off', true);
$cmd$,
        (SELECT string_agg(d || ';', E'\n') FROM unnest(drops) d),
        $cmd$
    UPDATE workqueue.scale_state SET mode = 'citus', changed_at = now(), changed_by = current_user
     WHERE mode <> 'citus';
    PERFORM workqueue._scope_policies();
    hi := lo + (1::bigint << 48);       -- as Citus' AlterSequenceMinMax
    FOR s IN SELECT p.seqrelid::regclass AS seq FROM pg_sequence p JOIN pg_class c ON c.oid = p.seqrelid
              WHERE c.relnamespace = 'workqueue'::regnamespace AND p.seqtypid = 'bigint'::regtype
                AND (p.seqmin <> lo OR p.seqmax <> hi) LOOP
        EXECUTE format('ALTER SEQUENCE %s MINVALUE %s MAXVALUE %s START %s RESTART %s', s.seq, lo, hi, lo, lo);
    END LOOP;
END
$do$$cmd$)
$fn$;

CREATE OR REPLACE FUNCTION workqueue.distribute() RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    reference text[] := ARRAY['workflow', 'workflow_version', 'workflow_step', 'role_member', 'role_assignment',
                              'calendar', 'sla_policy', 'queue', 'source', 'sync_run', 'scope_grant', 'purge'];
    per_item text[] := ARRAY['item', 'item_event', 'fetch', 'lease_fence'];
    node_local text[] := ARRAY['announce_state', 'scale_state'];
    unknown text;
    todo text[];
    drops text[] := '{}';
    adds text[] := '{}';
    cmd text;
    failed text;
    t text;
    r record;
BEGIN
    IF NOT coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false) THEN
        RAISE EXCEPTION 'permission denied to distribute workqueue'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %s is not a superuser.', current_user),
                  HINT = 'Call workqueue.distribute() as a superuser, on the Citus coordinator.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
        RAISE EXCEPTION 'workqueue cannot be distributed without Citus'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Extension citus is not installed in database %s.', current_database()),
                  HINT = 'CREATE EXTENSION citus on every node, register the coordinator and the workers, '
                         'then call workqueue.distribute() on the coordinator (doc/scale-out.md).';
    END IF;
    IF NOT citus_is_coordinator() THEN
        RAISE EXCEPTION 'workqueue.distribute() must run on the Citus coordinator'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('This node is in group %s of the cluster.',
                                  (SELECT groupid FROM pg_dist_local_group)),
                  HINT = 'Connect to the coordinator (the node of group 0) and call it there.';
    END IF;

    -- Every table of the schema has its place: a table added to the
    -- extension and not to one of the lists above is refused, not left
    -- local on the coordinator.
    SELECT string_agg(c.relname, ', ' ORDER BY c.relname) INTO unknown
      FROM pg_class c
     WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p')
       AND NOT c.relname = ANY (reference || per_item || node_local)
       -- (shards, should citus.override_table_visibility be off)
       AND NOT EXISTS (SELECT 1 FROM pg_dist_shard s
                        WHERE c.relname ~ '_[0-9]+$' AND s.shardid = substring(c.relname FROM '_([0-9]+)$')::bigint);
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'workqueue.distribute() does not know table %', unknown
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = 'Every table of schema workqueue is a reference table, distributed by queue or local to each node.',
                  HINT = 'Add the table to one of the lists of workqueue.distribute() (src/scale/scale.sql, doc/scale-out.md).';
    END IF;

    SELECT array_agg(x ORDER BY o) INTO todo
      FROM unnest(reference || per_item) WITH ORDINALITY u(x, o)
     WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition p WHERE p.logicalrelid = format('workqueue.%I', x)::regclass);

    IF todo IS NOT NULL THEN
        -- Foreign keys, policies and the trigger that Citus refuses or would
        -- trip over (see the head of this file), to drop on every node.
        FOR r IN SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def
                   FROM pg_constraint c
                  WHERE c.connamespace = 'workqueue'::regnamespace AND c.contype = 'f'
                  ORDER BY c.conrelid, c.conname LOOP
            drops := drops || format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', r.rel, r.conname);
            adds := adds || format('ALTER TABLE %s ADD CONSTRAINT %I %s', r.rel, r.conname, r.def);
        END LOOP;
        FOR r IN SELECT tablename, policyname FROM pg_policies WHERE schemaname = 'workqueue' LOOP
            drops := drops || format('DROP POLICY IF EXISTS %I ON workqueue.%I', r.policyname, r.tablename);
        END LOOP;
        drops := drops || 'DROP TRIGGER IF EXISTS workflow_version_added ON workqueue.workflow_version'::text;
    END IF;

    -- Foreign keys to reference tables need one connection per node
    -- (else "cannot modify table ... because there was a parallel operation
    -- on a distributed table").
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    UPDATE workqueue.scale_state SET mode = 'citus', changed_at = now(), changed_by = current_user
     WHERE mode <> 'citus';

    -- Every worker, including one added since the last call.  (These
    -- commands commit on the workers whatever happens here; each of them can
    -- run again.)
    cmd := workqueue._distribute_worker_command(drops);
    SELECT string_agg(format('%s:%s: %s', nodename, nodeport, result), '; ') INTO failed
      FROM run_command_on_workers(cmd) WHERE NOT success;
    IF failed IS NOT NULL THEN
        RAISE EXCEPTION 'could not prepare the workers for distribution'
            USING ERRCODE = 'external_routine_exception', DETAIL = failed,
                  HINT = 'Check that every worker has the same version of workqueue as the coordinator '
                         '(SELECT * FROM run_command_on_workers(''SELECT extversion FROM pg_extension WHERE extname = ''''workqueue''''''))';
    END IF;

    IF todo IS NULL THEN
        PERFORM workqueue._scope_policies();
        RETURN 'already distributed';
    END IF;

    FOREACH cmd IN ARRAY drops LOOP
        EXECUTE cmd;
    END LOOP;
    FOREACH t IN ARRAY todo LOOP
        IF t = ANY (reference) THEN
            PERFORM create_reference_table(format('workqueue.%I', t)::regclass);
        ELSIF t = 'item' THEN
            PERFORM create_distributed_table('workqueue.item'::regclass, 'queue');
        ELSE
            PERFORM create_distributed_table(format('workqueue.%I', t)::regclass, 'queue',
                                             colocate_with => 'workqueue.item');
        END IF;
    END LOOP;
    FOREACH cmd IN ARRAY adds LOOP
        EXECUTE cmd;
    END LOOP;
    PERFORM workqueue._scope_policies();
    RETURN format('distributed: %s', array_to_string(todo, ', '));
END
$$;

REVOKE ALL ON FUNCTION workqueue.distribute() FROM PUBLIC;
REVOKE ALL ON FUNCTION workqueue._distributed() FROM PUBLIC;
REVOKE ALL ON FUNCTION workqueue._distribute_worker_command(text[]) FROM PUBLIC;
