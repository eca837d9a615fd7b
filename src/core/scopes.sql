-- Scopes: row-level security on items (SPEC §8, doc/security.md).
--
-- An item's scope is a text[]; an empty scope is visible to everyone who
-- may use the queue.  A role sees an item with a non-empty scope if one of
-- the item's scopes was granted (grant_scope) to it or to a role it is a
-- member of; administrators see everything.  The check applies to the
-- calling database role (workqueue._caller()), also when it acts for
-- someone else.  Tables read directly are filtered by the policies at the
-- end of this file; the API functions (SECURITY DEFINER, so exempt from
-- policies) filter themselves: an item out of scope does not exist for them.

-- The scopes the caller sees items of; NULL for an administrator (all).
CREATE OR REPLACE FUNCTION workqueue._caller_scopes() RETURNS text[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN workqueue.is_admin(workqueue._caller()) THEN NULL
                ELSE coalesce((SELECT array_agg(DISTINCT g.scope)
                                 FROM workqueue.scope_grant g JOIN pg_roles r ON r.rolname = g.role
                                WHERE pg_has_role(workqueue._caller(), r.oid, 'USAGE')), '{}') END
$$;

-- May the caller see an item with this scope?
CREATE OR REPLACE FUNCTION workqueue._visible(scope text[]) RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT scope = '{}' OR coalesce(scope && workqueue._caller_scopes(), true)
$$;

-- Whether an item with this scope is visible to the caller (as
-- workqueue._visible(), with the caller's administrator flag and role passed
-- in; C, src/core/scopes.c): what claim() and transition() filter items by.  The caller's scope
-- grants are read once per statement, and only for an item with a scope.
CREATE OR REPLACE FUNCTION workqueue._scope_visible(scope text[], admin boolean, caller oid) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_scope_visible';

REVOKE ALL ON FUNCTION workqueue._scope_visible(text[], boolean, oid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue.grant_scope(role text, scope text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM workqueue._require_admin('grant scopes');
    PERFORM workqueue._require_nonempty('scope', grant_scope.scope);
    IF grant_scope.role IS NULL OR NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = grant_scope.role) THEN
        PERFORM workqueue._raise_undefined('role', coalesce(left(grant_scope.role, 100), 'NULL'),
                                           'Scopes are granted to database roles (or group roles): CREATE ROLE first.');
    END IF;
    INSERT INTO workqueue.scope_grant (role, scope, granted_by)
    VALUES (grant_scope.role, grant_scope.scope, workqueue._caller())
        ON CONFLICT ON CONSTRAINT scope_grant_pkey DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.revoke_scope(role text, scope text)
    RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('revoke scopes');
    DELETE FROM workqueue.scope_grant WHERE role = revoke_scope.role AND scope = revoke_scope.scope;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'scope "%" is not granted to role "%"', coalesce(left(revoke_scope.scope, 100), 'NULL'),
                        coalesce(left(revoke_scope.role, 100), 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'List grants with: SELECT * FROM workqueue.scope_grant;';
    END IF;
END
$$;

-- Sets the scope of items (a field_update event records old and new).
CREATE OR REPLACE FUNCTION workqueue.set_scope(items bigint[], scope text[]) RETURNS int
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    n int;
BEGIN
    PERFORM workqueue._require_admin('set scopes');
    IF set_scope.scope IS NULL OR array_position(set_scope.scope, NULL) IS NOT NULL
       OR '' = ANY (set_scope.scope) THEN
        RAISE EXCEPTION 'scope must be an array of non-empty names'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. ''{emea}'', or ''{}'' for everyone.';
    END IF;
    IF set_scope.items IS NULL OR array_position(set_scope.items, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 'item array must not be or contain null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF workqueue._citus() THEN
        RETURN workqueue._set_scope_citus(set_scope.items, set_scope.scope);
    END IF;
    IF EXISTS (SELECT 1 FROM unnest(set_scope.items) x(id) WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.id = x.id)) THEN
        RAISE EXCEPTION 'item % does not exist',
            (SELECT x.id FROM unnest(set_scope.items) x(id)
              WHERE NOT EXISTS (SELECT 1 FROM workqueue.item i WHERE i.id = x.id) LIMIT 1)
            USING ERRCODE = 'undefined_object';
    END IF;
    WITH l AS (
        SELECT i.queue, i.id, i.step, i.scope AS old FROM workqueue.item i
         WHERE i.id IN (SELECT unnest(set_scope.items)) AND i.scope IS DISTINCT FROM set_scope.scope
         ORDER BY i.id FOR UPDATE),
    u AS (
        UPDATE workqueue.item i SET scope = set_scope.scope, updated_at = now()
          FROM l WHERE i.queue = l.queue AND i.id = l.id
        RETURNING i.queue, i.id, i.step, l.old),
    e AS (
        INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
        SELECT u.queue, u.id, workqueue._caller(), 'field_update', u.step, u.step,
               jsonb_build_object('old', jsonb_build_object('scope', u.old),
                                  'new', jsonb_build_object('scope', set_scope.scope))
          FROM u
        RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step)
    SELECT count(*) INTO n FROM e;
    RETURN n;
END
$$;

-- set_scope() on a distributed install (doc/scale-out.md, "SLA timers,
-- calendars and scopes"): Citus refuses the correlated sub-selects over
-- unnest() and row locks in a statement of many shards, so the ids are read
-- without locks (a multi-shard read), then each queue's items are locked,
-- updated and their events written by one statement routed to its shard.
CREATE OR REPLACE FUNCTION workqueue._set_scope_citus(items bigint[], scope text[]) RETURNS int
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    found bigint[];
    missing bigint;
    qn text;
    k int;
    n int := 0;
BEGIN
    found := ARRAY(SELECT i.id FROM workqueue.item i WHERE i.id = ANY (items));
    missing := (SELECT x.id FROM unnest(items) x(id) WHERE x.id <> ALL (found) LIMIT 1);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'item % does not exist', missing USING ERRCODE = 'undefined_object';
    END IF;
    FOR qn IN SELECT DISTINCT i.queue FROM workqueue.item i WHERE i.id = ANY (items) ORDER BY 1 LOOP
        EXECUTE $q$
        WITH l AS (
            SELECT i.queue, i.id, i.step, i.scope AS old FROM workqueue.item i
             WHERE i.queue = $1 AND i.id = ANY ($2) AND i.scope IS DISTINCT FROM $3
             ORDER BY i.id FOR UPDATE),
        u AS (
            UPDATE workqueue.item i SET scope = $3, updated_at = $5
              FROM l WHERE i.queue = $1 AND l.queue = $1 AND i.id = l.id
            RETURNING i.queue, i.id, i.step, l.old),
        e AS (
            INSERT INTO workqueue.item_event (queue, item_id, actor, kind, from_step, to_step, payload)
            SELECT u.queue, u.id, $4, 'field_update', u.step, u.step,
                   jsonb_build_object('old', jsonb_build_object('scope', u.old), 'new', jsonb_build_object('scope', $3))
              FROM u
            RETURNING item_event.queue, item_event.item_id, item_event.id, item_event.to_step)
        SELECT count(*) FROM e$q$
        INTO k USING qn, items, scope, workqueue._caller(), now();
        n := n + k;
    END LOOP;
    RETURN n;
END
$$;

REVOKE ALL ON FUNCTION workqueue._set_scope_citus(bigint[], text[]) FROM PUBLIC;

-- Direct reads: items by scope, events and fetches of visible items only.
-- Administrators (workqueue_admin) read everything (and write nothing directly);
-- superusers, the owner and SECURITY DEFINER functions are exempt.  (Policies
-- are dropped and created again, so that an upgrade, which runs this file
-- again, leaves exactly these.)
--
-- Their form depends on the layout (workqueue.scale_state, src/scale/):
-- on one node a sub-select reads the caller's scopes once per statement and
-- what belongs to an item is visible when a sub-select finds the item.
-- Citus refuses sub-selects in policies of distributed tables ("Subqueries
-- are not supported in policies on distributed tables"), so a distributed
-- install calls functions instead, which read scope_grant (a reference table)
-- and item from inside a shard's query: Citus refuses that too unless the
-- function allows nested distributed execution, which it does for these
-- reads: scope_grant has a copy on every node and an item is read in its
-- own queue, i.e. in the co-located shard of the row that asks
-- (doc/scale-out.md, "Row-level security").
CREATE OR REPLACE FUNCTION workqueue._item_visible(queue text, item_id bigint) RETURNS boolean
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    -- as the caller: the item's own policy decides
    RETURN EXISTS (SELECT 1 FROM workqueue.item i WHERE i.queue = _item_visible.queue AND i.id = _item_visible.item_id);
END
$$;

CREATE OR REPLACE FUNCTION workqueue._scope_policies() RETURNS void
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    citus boolean := EXISTS (SELECT 1 FROM workqueue.scale_state WHERE mode = 'citus');
    t text;
BEGIN
    IF citus THEN
        ALTER FUNCTION workqueue._caller_scopes() SET citus.allow_nested_distributed_execution = on;
        ALTER FUNCTION workqueue._item_visible(text, bigint) SET citus.allow_nested_distributed_execution = on;
    END IF;
    ALTER TABLE workqueue.item ENABLE ROW LEVEL SECURITY;
    DROP POLICY IF EXISTS item_by_scope ON workqueue.item;
    IF citus THEN
        CREATE POLICY item_by_scope ON workqueue.item FOR SELECT USING (workqueue._visible(scope));
    ELSE
        CREATE POLICY item_by_scope ON workqueue.item FOR SELECT
            USING (scope = '{}' OR coalesce(scope && (SELECT workqueue._caller_scopes()), true));
    END IF;
    DROP POLICY IF EXISTS item_admin ON workqueue.item;
    CREATE POLICY item_admin ON workqueue.item FOR SELECT TO workqueue_admin USING (true);
    -- What belongs to an item -- its events, fetches and lease fences
    -- (src/queue/tables.sql) -- is visible exactly when the item is; the same
    -- two policies on each of those tables.
    FOREACH t IN ARRAY ARRAY['item_event', 'fetch', 'lease_fence'] LOOP
        EXECUTE format('ALTER TABLE workqueue.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('DROP POLICY IF EXISTS %I ON workqueue.%I', t || '_by_scope', t);
        IF citus THEN
            EXECUTE format('CREATE POLICY %I ON workqueue.%I FOR SELECT USING (workqueue._item_visible(queue, item_id))',
                           t || '_by_scope', t);
        ELSE
            EXECUTE format('CREATE POLICY %I ON workqueue.%I FOR SELECT USING (EXISTS (SELECT 1 FROM workqueue.item i'
                           ' WHERE i.queue = %I.queue AND i.id = %I.item_id))', t || '_by_scope', t, t, t);
        END IF;
        EXECUTE format('DROP POLICY IF EXISTS %I ON workqueue.%I', t || '_admin', t);
        EXECUTE format('CREATE POLICY %I ON workqueue.%I FOR SELECT TO workqueue_admin USING (true)',
                       t || '_admin', t);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION workqueue._scope_policies() FROM PUBLIC;
SELECT workqueue._scope_policies();
