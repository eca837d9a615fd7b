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

-- Raises unless every value is a non-empty string: "<what> must not be
-- empty".
CREATE OR REPLACE FUNCTION workqueue._require_nonempty(what text, VARIADIC vals text[]) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF array_position(vals, NULL) IS NOT NULL OR '' = ANY (vals) THEN
        RAISE EXCEPTION '% must not be empty', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- Raises "<what> "<name>" does not exist" (undefined_object) with a hint on
-- where such things come from.
CREATE OR REPLACE FUNCTION workqueue._raise_undefined(what text, name text, hint text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% "%" does not exist', what, name USING ERRCODE = 'undefined_object', HINT = hint;
END
$$;

-- The name of something an administrator creates: not empty ("<what> name
-- must not be empty"), within the limits of _check_name().
CREATE OR REPLACE FUNCTION workqueue._require_name(what text, name text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM workqueue._require_nonempty(what || ' name', name);
    PERFORM workqueue._check_name(what, name);                          -- hostile
END
$$;

-- Raises "<what> must be a JSON object", with the type of the value given.
CREATE OR REPLACE FUNCTION workqueue._raise_not_object(what text, value jsonb, hint text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE EXCEPTION '% must be a JSON object', what
        USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('The value given is of type %s.', coalesce(jsonb_typeof(value), 'NULL')),
              HINT = hint;
END
$$;
