-- Helpers shared by the pgTAP suites in test/pgtap/, loaded once into the
-- test database after CREATE EXTENSION workqueue and pgtap (test/inside.sh
-- does it).

CREATE SCHEMA IF NOT EXISTS wqt;
GRANT USAGE ON SCHEMA wqt TO PUBLIC;

-- wqt.err(sql): runs sql and returns the SQLSTATE, message, detail and hint
-- of the error it raised (all NULL if it raised none).
CREATE OR REPLACE FUNCTION wqt.err(sql text, OUT state text, OUT msg text, OUT detail text, OUT hint text)
    LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;
