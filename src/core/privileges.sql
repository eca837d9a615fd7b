-- Core: who is calling, who is an administrator, who may act for others,
-- and the limits on names and external ids (C: src/core/privileges.c,
-- src/core/limits.c).  Rules: doc/security.md, doc/hostile-input.md.

-- The role that called into workqueue: the session's current role outside
-- any SECURITY DEFINER function (current_user inside them is the owner).
CREATE OR REPLACE FUNCTION workqueue._caller() RETURNS text
    LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'workqueue_caller';

-- Is this database role an administrator of workqueue: a superuser or a
-- member of workqueue_admin?  Defaults to the caller.  (C, system caches.)
CREATE OR REPLACE FUNCTION workqueue.is_admin(who text DEFAULT NULL) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_is_admin';

-- Does "actor" act with administrator rights?  Only if it names an
-- administrator and is either the caller itself or named by an
-- administrator: acting as someone else never gains rights.
CREATE OR REPLACE FUNCTION workqueue._actor_is_admin(actor text) RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_actor_is_admin';

CREATE OR REPLACE FUNCTION workqueue._require_admin(what text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT workqueue.is_admin() THEN
        RAISE EXCEPTION 'permission denied to %', what
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role "%s" is not a workqueue administrator.', workqueue._caller()),
                  HINT = 'Ask an administrator to run: GRANT workqueue_admin TO ' || quote_ident(workqueue._caller()) || ';';
    END IF;
END
$$;

-- Checks a worker/actor argument: not empty, and naming someone other than
-- the caller only if the caller is an administrator or a member of
-- workqueue_agent (an application acting for its users).  (C.)
CREATE OR REPLACE FUNCTION workqueue._check_actor(actor text, what text) RETURNS void
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_check_actor';

-- hostile: the length checks, in C (src/limits.c)
CREATE OR REPLACE FUNCTION workqueue._check_name(what text, name text) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_check_name';

CREATE OR REPLACE FUNCTION workqueue._check_external_id(external_id text) RETURNS void
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'workqueue_check_external_id';
