-- Statements on the extension's tables in the install and update scripts
-- (doc/scale-out.md, "Updating a distributed install"; sql/upgrade/README.md).
-- First of the definitions: the steps of sql/upgrade/ and the definitions
-- that follow call it.

-- A statement that changes the extension's tables or their rows -- ALTER
-- TABLE, CREATE INDEX, UPDATE, a call that writes rows -- run once for the
-- whole cluster:
--
--  * single node (and a Citus node not distributed yet: each node has its
--    own tables, and Citus runs the script on each): run here, as if it were
--    written in the script;
--  * distributed, on the coordinator: run here, through Citus, which applies
--    it to every shard and to the workers' copies of the table.  Through
--    EXECUTE, a statement on its own: written directly in the script, Citus
--    sends the whole script as the statement's text to the workers ("cannot
--    insert multiple commands into a prepared statement");
--  * distributed, on a worker (Citus runs ALTER EXTENSION there after the
--    coordinator has run it): nothing, the coordinator has done it.  (A
--    worker could not either: it runs the script as a command of the
--    coordinator, where a query on Citus tables fails with "cannot execute a
--    distributed query from a query on a shard".)
--
-- With citus.enable_ddl_propagation off, the coordinator would change its
-- own table only and Citus would not run the update on the workers: the
-- update is refused rather than leave shards and nodes with different
-- columns.
CREATE OR REPLACE FUNCTION workqueue._cluster_command(command text) RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus') THEN
        IF NOT citus_is_coordinator() THEN
            RETURN;
        END IF;
        IF NOT current_setting('citus.enable_ddl_propagation')::boolean THEN
            RAISE EXCEPTION 'cannot update a distributed workqueue with DDL propagation off'
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('citus.enable_ddl_propagation is off: "%s" would change the coordinator''s table only.',
                                      left(command, 200)),
                      HINT = 'RESET citus.enable_ddl_propagation, then run ALTER EXTENSION workqueue UPDATE again '
                             'on the coordinator (doc/scale-out.md, "Updating a distributed install").';
        END IF;
        -- the background workers wait until the update commits (a turn of
        -- theirs between two of its table changes made a deadlock cycle)
        PERFORM workqueue._hold_workers();
    END IF;
    EXECUTE command;
END
$$;

REVOKE ALL ON FUNCTION workqueue._cluster_command(text) FROM PUBLIC;
