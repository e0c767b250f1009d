\set try_saved_echo :ECHO
\set ECHO none
-- The regression files' error catcher, included with \i sql/include/try.sql
-- (pg_regress runs psql in the tree's root).  Created in pg_temp, or in the
-- schema named by the psql variable try_schema for a file that reconnects.
--
-- try(sql): run a statement; its SQLSTATE ('00000' when it succeeds) and
--   the message, detail and hint of the error it raises.
-- try_text(sql): the same as one text, 'no error' when it succeeds.
\if :{?try_schema}
\else
\set try_schema pg_temp
\endif
CREATE FUNCTION :try_schema.try(sql text,
    OUT state text, OUT message text, OUT detail text, OUT hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    state := '00000';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
END
$$;
CREATE FUNCTION :try_schema.try_text(sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    state text; message text; detail text; hint text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN state || ': ' || message || coalesce(E'\nDETAIL: ' || nullif(detail, ''), '')
           || coalesce(E'\nHINT: ' || nullif(hint, ''), '');
END
$$;
GRANT EXECUTE ON FUNCTION :try_schema.try(text), :try_schema.try_text(text) TO PUBLIC;
\set ECHO :try_saved_echo
