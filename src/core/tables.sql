-- Core: the roles and the schema's privileges, and the table of scope grants.
--
-- Every function that changes data is SECURITY DEFINER with a pinned
-- search_path; ordinary roles get SELECT on the tables and EXECUTE on the
-- API, never direct write access, so the audit trail in item_event cannot be
-- bypassed or rewritten.
--
-- Keys are ready for Citus: everything tied to an item carries "queue" and
-- every primary, unique and foreign key on those tables includes it.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'workqueue_admin') THEN
        CREATE ROLE workqueue_admin NOLOGIN;
    END IF;
    -- members may pass another person's name as worker/actor (applications)
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'workqueue_agent') THEN
        CREATE ROLE workqueue_agent NOLOGIN;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA workqueue TO PUBLIC;

-- Scopes (row-level security on items, src/core/scopes.sql): which
-- database roles see items of which scope.
CREATE TABLE workqueue.scope_grant (
    role        text NOT NULL,
    scope       text NOT NULL CHECK (scope <> ''),
    granted_at  timestamptz NOT NULL DEFAULT now(),
    granted_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (role, scope)
);
SELECT pg_catalog.pg_extension_config_dump('workqueue.scope_grant', '');
