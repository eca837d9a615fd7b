-- Pending changes from branch "hosts", for the lead to fold into the next
-- upgrade script (not installed; no Makefile change).
--
-- sync(): the hint for an unknown source told everyone to list sources
-- with "SELECT name FROM workqueue.source", which only administrators may
-- read (it holds the headers); everyone may read the view
-- workqueue.sources.  Only the HINT changed.

CREATE OR REPLACE FUNCTION workqueue.sync(source text, "full" boolean DEFAULT false, force boolean DEFAULT false)
    RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    run_id bigint;
BEGIN
    -- serialize requests per source so that two callers cannot both queue
    PERFORM 1 FROM workqueue.source WHERE name = sync.source FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'source "%" does not exist', coalesce(sync.source, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with workqueue.create_source(), or list sources with: SELECT name FROM workqueue.sources;';
    END IF;
    IF NOT coalesce(sync.force, false) THEN
        SELECT id INTO run_id FROM workqueue.sync_run
         WHERE source = sync.source AND status IN ('queued', 'running')
         ORDER BY id LIMIT 1;
        IF FOUND THEN
            RETURN run_id;
        END IF;
    END IF;
    INSERT INTO workqueue.sync_run (source, "full", triggered_by)
    VALUES (sync.source, coalesce(sync."full", false), workqueue._caller())
    RETURNING id INTO run_id;
    PERFORM workqueue._wake();
    RETURN run_id;
END
$$;
