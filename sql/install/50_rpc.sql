-- celerysalt install script, part 50: RPC from SQL.

CREATE FUNCTION celerysalt_call(topic text, payload jsonb,
                                timeout interval DEFAULT '30 seconds',
                                version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_call'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION celerysalt_call(text, jsonb, interval, text) IS
    'Sends an RPC request to the Celery handler of topic at once (not at commit) and returns its response; raises CR001-CR008 for remote outcomes.';

CREATE FUNCTION celerysalt_call_envelope(topic text, payload jsonb,
                                         timeout interval DEFAULT '30 seconds',
                                         version text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'celerysalt_call_envelope'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION celerysalt_call_envelope(text, jsonb, interval, text) IS
    'Like celerysalt_call, but returns {"outcome", "task_id", "response", "error"} for every remote outcome instead of raising.';
