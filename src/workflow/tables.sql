-- Workflows: definitions (immutable versions and their steps), the members
-- of workflow roles and how each role's pool hands out work.

CREATE TABLE workqueue.workflow (
    name            text PRIMARY KEY CHECK (name <> ''),
    current_version int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text NOT NULL DEFAULT current_user
);

-- Immutable: rows are only ever inserted (by define_workflow).
CREATE TABLE workqueue.workflow_version (
    workflow    text NOT NULL REFERENCES workqueue.workflow (name),
    version     int NOT NULL CHECK (version > 0),
    definition  jsonb NOT NULL,
    start_step  text NOT NULL,
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL DEFAULT current_user,
    PRIMARY KEY (workflow, version)
);

-- The steps of each version, unpacked from the definition for SQL use.
CREATE TABLE workqueue.workflow_step (
    workflow    text NOT NULL,
    version     int NOT NULL,
    position    int NOT NULL,
    name        text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('work', 'resolved', 'rejected')),
    role        text,
    weight      double precision NOT NULL DEFAULT 1,
    is_start    boolean NOT NULL DEFAULT false,
    pauses_sla  boolean NOT NULL DEFAULT false,
    escalate_to text,
    PRIMARY KEY (workflow, version, name),
    FOREIGN KEY (workflow, version) REFERENCES workqueue.workflow_version (workflow, version)
);

-- Assignment pools of workflow roles ("reviewer", "coordinator", ...).
-- Members are names, not necessarily database roles.  Removing a member
-- only deactivates the row.  last_assigned and assigned_count are the cursor
-- of round robin: when the member last got an item (in units of
-- role_assignment.assigned), and how many it got.
CREATE TABLE workqueue.role_member (
    role           text NOT NULL CHECK (role <> ''),
    member         text NOT NULL CHECK (member <> ''),
    active         boolean NOT NULL DEFAULT true,
    added_at       timestamptz NOT NULL DEFAULT now(),
    last_assigned  bigint,
    assigned_count bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (role, member)
);

-- How each role's pool hands out work, and its round-robin counter.
CREATE TABLE workqueue.role_assignment (
    role        text PRIMARY KEY CHECK (role <> ''),
    strategy    text NOT NULL DEFAULT 'round_robin' CHECK (strategy IN ('round_robin', 'least_loaded')),
    assigned    bigint NOT NULL DEFAULT 0,      -- items handed out so far
    changed_at  timestamptz NOT NULL DEFAULT now(),
    changed_by  text NOT NULL DEFAULT current_user
);

-- pg_dump keeps user data; the built-in workflow is recreated by the script.
SELECT pg_catalog.pg_extension_config_dump('workqueue.workflow', 'WHERE name <> ''review''');
SELECT pg_catalog.pg_extension_config_dump('workqueue.workflow_version', 'WHERE NOT builtin');
SELECT pg_catalog.pg_extension_config_dump('workqueue.workflow_step', 'WHERE NOT (workflow = ''review'' AND version = 1)');
SELECT pg_catalog.pg_extension_config_dump('workqueue.role_member', '');
SELECT pg_catalog.pg_extension_config_dump('workqueue.role_assignment', '');

-- Privileges (read for everyone, writes only through the API; versions and
-- their steps are never changed): src/core/grants.sql.
