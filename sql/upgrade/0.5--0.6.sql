-- workqueue 0.5 -> 0.6: the source moved into src/<capability>/ and the
-- install script is built from it.  No table changes; every function, view
-- and policy is written again from src/ by the definitions that follow this
-- step in the built script.

-- _sla_start() and _sla_move() became one function, _sla_enter().
DROP FUNCTION IF EXISTS workqueue._sla_start(bigint[], bigint[], text[]);
DROP FUNCTION IF EXISTS workqueue._sla_move(bigint[], bigint[], text[]);
