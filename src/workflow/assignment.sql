-- Assignment: the members of workflow roles and how a role hands out work
-- (round_robin, least_loaded).  Rules: doc/workflows.md, "Assignment".

CREATE OR REPLACE FUNCTION workqueue.add_member(role text, member text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('manage role members');
    PERFORM workqueue._require_nonempty('role and member', add_member.role, add_member.member);
    PERFORM workqueue._check_name('role', add_member.role);              -- hostile
    PERFORM workqueue._check_name('member', add_member.member);          -- hostile
    INSERT INTO workqueue.role_member (role, member) VALUES (add_member.role, add_member.member)
        ON CONFLICT (role, member) DO UPDATE SET active = true;
END
$$;

CREATE OR REPLACE FUNCTION workqueue.remove_member(role text, member text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('manage role members');
    IF remove_member.role IS NULL OR remove_member.member IS NULL THEN
        RAISE EXCEPTION 'role and member must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE workqueue.role_member SET active = false
     WHERE role = remove_member.role AND member = remove_member.member;
    IF NOT FOUND THEN
        RAISE EXCEPTION '"%" is not a member of role "%"', remove_member.member, remove_member.role
            USING ERRCODE = 'undefined_object',
                  HINT = 'List members with: SELECT * FROM workqueue.role_member;';
    END IF;
END
$$;

-- Picks n members of a role's pool by its strategy (NULL if the pool has
-- no active member).  Locks the role's row until the end of the
-- transaction, so concurrent assignments of one role take turns and round
-- robin stays fair.
CREATE OR REPLACE FUNCTION workqueue._pick_members(role text, n int, OUT members text[], OUT strategy text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    base bigint;
    names text[];
    loads bigint[];
    c_names text[];
    c_loads bigint[];
    k int;
    best int;
BEGIN
    INSERT INTO workqueue.role_assignment AS r (role) VALUES (role) ON CONFLICT ON CONSTRAINT role_assignment_pkey DO NOTHING;
    SELECT r.strategy, r.assigned INTO strategy, base FROM workqueue.role_assignment r WHERE r.role = role FOR UPDATE;

    IF strategy = 'least_loaded' AND workqueue._citus() THEN
        -- distributed: Citus refuses the correlated count over item next to
        -- a reference table; the loads are counted by one read of every
        -- shard, grouped by member, and matched here
        names := ARRAY(SELECT m.member FROM workqueue.role_member m WHERE m.role = role AND m.active
                        ORDER BY m.last_assigned NULLS FIRST, m.member);
        IF cardinality(names) = 0 THEN
            names := NULL;
        END IF;
        SELECT array_agg(c.assignee), array_agg(c.n) INTO c_names, c_loads
          FROM (SELECT i.assignee, count(*) AS n FROM workqueue.item i
                 WHERE i.assignee = ANY (names) AND i.status IN ('open', 'in_progress') GROUP BY i.assignee) c;
        loads := ARRAY(SELECT coalesce(c.n, 0) FROM unnest(names) WITH ORDINALITY AS x(member, o)
                         LEFT JOIN unnest(c_names, c_loads) AS c(member, n) ON c.member = x.member ORDER BY x.o);
    ELSIF strategy = 'least_loaded' THEN
        SELECT array_agg(m.member ORDER BY m.last_assigned NULLS FIRST, m.member),
               array_agg((SELECT count(*) FROM workqueue.item i
                           WHERE i.assignee = m.member AND i.status IN ('open', 'in_progress'))
                         ORDER BY m.last_assigned NULLS FIRST, m.member)
          INTO names, loads
          FROM workqueue.role_member m WHERE m.role = role AND m.active;
    ELSE
        SELECT array_agg(m.member ORDER BY m.last_assigned NULLS FIRST, m.member) INTO names
          FROM workqueue.role_member m WHERE m.role = role AND m.active;
    END IF;
    IF names IS NULL THEN
        RETURN;
    END IF;
    k := cardinality(names);
    members := array_fill(NULL::text, ARRAY[n]);
    FOR i IN 1..n LOOP
        IF strategy = 'least_loaded' THEN
            best := 1;
            FOR j IN 2..k LOOP
                IF loads[j] < loads[best] THEN best := j; END IF;
            END LOOP;
            loads[best] := loads[best] + 1;
            -- the one served rotates to the back of equals
            names := names[1:best - 1] || names[best + 1:k] || names[best];
            loads := loads[1:best - 1] || loads[best + 1:k] || loads[best];
            members[i] := names[k];
        ELSE
            members[i] := names[(i - 1) % k + 1];
        END IF;
    END LOOP;

    UPDATE workqueue.role_assignment r SET assigned = r.assigned + n WHERE r.role = role;
    UPDATE workqueue.role_member m
       SET last_assigned = base + a.last_pos, assigned_count = m.assigned_count + a.cnt
      FROM (SELECT x.member, max(x.pos) AS last_pos, count(*) AS cnt
              FROM unnest(members) WITH ORDINALITY AS x(member, pos) GROUP BY x.member) a
     WHERE m.role = role AND m.member = a.member;
END
$$;

REVOKE ALL ON FUNCTION workqueue._pick_members(text, int) FROM PUBLIC;

-- Sets how a role hands out work (the strategies _pick_members() applies).
CREATE OR REPLACE FUNCTION workqueue.assignment_strategy(role text, strategy text) RETURNS void
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    PERFORM workqueue._require_admin('set assignment strategies');
    PERFORM workqueue._require_nonempty('role', assignment_strategy.role);
    IF assignment_strategy.strategy IS NULL OR assignment_strategy.strategy NOT IN ('round_robin', 'least_loaded') THEN
        RAISE EXCEPTION 'unrecognized assignment strategy "%"', coalesce(left(assignment_strategy.strategy, 100), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''round_robin'' (members in turn) or ''least_loaded'' (fewest open items).';
    END IF;
    -- changed_at from the inserted row, not now(): Citus refuses functions
    -- that are not IMMUTABLE in DO UPDATE SET (role_assignment is a
    -- reference table on a distributed install)
    INSERT INTO workqueue.role_assignment (role, strategy, changed_at, changed_by)
    VALUES (assignment_strategy.role, assignment_strategy.strategy, now(), workqueue._caller())
        ON CONFLICT (role) DO UPDATE SET strategy = excluded.strategy, changed_at = excluded.changed_at,
                                         changed_by = excluded.changed_by;
END
$$;

-- The assignments items need that have just entered (or been created in) a
-- working step with a role: an assignee who is an active member of that
-- role keeps the item (no row); anyone else is replaced by a member picked
-- by the role's strategy, or by nobody (member NULL) if the role has no
-- active member.
CREATE OR REPLACE FUNCTION workqueue._assignments(ids bigint[])
    RETURNS TABLE (id bigint, role text, member text, strategy text)
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    g record;
    pick record;
BEGIN
    FOR g IN
        SELECT s.role, array_agg(i.id ORDER BY i.id) AS ids
          FROM unnest(ids) AS u(id)
          JOIN workqueue.item i ON i.id = u.id
          JOIN workqueue.workflow_step s
            ON s.workflow = i.workflow AND s.version = i.workflow_version AND s.name = i.step
         WHERE s.kind = 'work' AND s.role IS NOT NULL
           AND i.status IN ('open', 'in_progress')
           AND NOT EXISTS (SELECT 1 FROM workqueue.role_member m
                            WHERE m.role = s.role AND m.member = i.assignee AND m.active)
         GROUP BY s.role ORDER BY s.role
    LOOP
        pick := workqueue._pick_members(g.role, cardinality(g.ids));
        RETURN QUERY SELECT x.id, g.role, x.member, pick.strategy
                       FROM unnest(g.ids, coalesce(pick.members, array_fill(NULL::text, ARRAY[cardinality(g.ids)])))
                            AS x(id, member);
    END LOOP;
END
$$;

REVOKE ALL ON FUNCTION workqueue._assignments(bigint[]) FROM PUBLIC;
