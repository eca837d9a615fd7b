-- Privileges on the schema's tables, views and sequences, all in one place
-- (doc/security.md, "Roles and grants").  Run last, by the install script
-- and by every upgrade, so that a relation added or replaced by either
-- ends up with exactly these:
--
--  * everyone (PUBLIC) reads every table and view -- items, events, fetches
--    and fences through row-level security by scope (src/core/scopes.sql) --
--    except the source table (headers may hold API tokens: everyone else
--    reads the view workqueue.sources) and the upstream error samples of
--    sync runs (they quote items by external id);
--  * administrators (workqueue_admin) read everything, and write nothing
--    directly: they define things through the API, which validates them and
--    writes the audit event in the same statement.  No role but the owner
--    holds INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES or TRIGGER on any
--    table, nor any privilege on a sequence, nor CREATE on the schema: a
--    trigger, rule or policy would run inside the SECURITY DEFINER API as
--    the owner (test/pgtap/85_privileges.sql checks it from the catalog).
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT c.oid::regclass AS rel, c.relname, c.relkind
               FROM pg_catalog.pg_class c
              WHERE c.relnamespace = 'workqueue'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    LOOP
        IF r.relkind = 'S' THEN
            EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC, workqueue_admin, workqueue_agent', r.rel);
            CONTINUE;
        END IF;
        -- (a table-level REVOKE takes the column privileges with it)
        EXECUTE format('REVOKE ALL ON TABLE %s FROM PUBLIC, workqueue_admin, workqueue_agent', r.rel);
        EXECUTE format('GRANT SELECT ON TABLE %s TO workqueue_admin', r.rel);
        IF r.relname = 'source' THEN
            CONTINUE;
        ELSIF r.relname = 'sync_run' THEN
            EXECUTE (SELECT format('GRANT SELECT (%s) ON TABLE %s TO PUBLIC',
                                   string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), r.rel)
                       FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = r.rel AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attname <> 'error_samples');
        ELSE
            EXECUTE format('GRANT SELECT ON TABLE %s TO PUBLIC', r.rel);
        END IF;
    END LOOP;
END
$$;
REVOKE CREATE ON SCHEMA workqueue FROM PUBLIC, workqueue_admin, workqueue_agent;
GRANT USAGE ON SCHEMA workqueue TO PUBLIC;
