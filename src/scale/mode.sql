-- The layout of this install as the API's statements see it: is it
-- distributed?  workqueue._distributed() reads scale_state; _citus() is the
-- same answer cached per backend (src/scale/mode.c), for the calls that
-- choose between their single-node and their Citus statements: a
-- single-node install runs no extra query for it.  Every write of the row
-- (distribute() on each node) tells every backend to read it again.
CREATE OR REPLACE FUNCTION workqueue._citus() RETURNS boolean
    LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'workqueue_distributed_cached';

REVOKE ALL ON FUNCTION workqueue._citus() FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue._scale_state_changed() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'workqueue_scale_state_changed';

REVOKE ALL ON FUNCTION workqueue._scale_state_changed() FROM PUBLIC;

CREATE OR REPLACE TRIGGER scale_state_changed AFTER INSERT OR UPDATE OR DELETE ON workqueue.scale_state
    FOR EACH STATEMENT EXECUTE FUNCTION workqueue._scale_state_changed();
