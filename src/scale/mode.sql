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

-- The queues of items this backend has met, on a distributed install (C,
-- src/core/scale.c: an item never changes queue and ids are never given out
-- twice, so what a backend learnt stays true).  A call that names an item by
-- id alone routes its statements to the queue's shard when the queue is
-- known, and remembers it after reading it from every shard.  On a single
-- node: _known_queue() is NULL, _remember_queue() does nothing.
CREATE OR REPLACE FUNCTION workqueue._known_queue(id bigint) RETURNS text
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'workqueue_known_queue';

REVOKE ALL ON FUNCTION workqueue._known_queue(bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION workqueue._remember_queue(id bigint, queue text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'workqueue_remember_queue';

REVOKE ALL ON FUNCTION workqueue._remember_queue(bigint, text) FROM PUBLIC;

-- A distributed install's read of an item by id alone, without a lock: in
-- its queue's shard when the backend knows the queue, else from every shard
-- (and the queue remembered).  Every column NULL when there is no such item.
-- No scope check: the caller judges it (on the coordinator).
CREATE OR REPLACE FUNCTION workqueue._read_item_citus(id bigint) RETURNS workqueue.item
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    q text := workqueue._known_queue(_read_item_citus.id);
    it workqueue.item;
BEGIN
    IF _read_item_citus.id IS NULL THEN
        RETURN it;
    ELSIF q IS NOT NULL THEN
        SELECT * INTO it FROM workqueue.item WHERE item.queue = q AND item.id = _read_item_citus.id;
    ELSE
        SELECT * INTO it FROM workqueue.item WHERE item.id = _read_item_citus.id;     -- every shard
        IF FOUND THEN
            PERFORM workqueue._remember_queue(it.id, it.queue);
        END IF;
    END IF;
    RETURN it;
END
$$;

REVOKE ALL ON FUNCTION workqueue._read_item_citus(bigint) FROM PUBLIC;
