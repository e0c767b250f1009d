-- celerysalt install script, part 90: privileges, all in one place.
--
-- PUBLIC keeps only pure functions: the JSON Schema functions and the
-- follow-action rule checker and builder.  Readers see the registry, the
-- delivery state and logs; publishers also publish, call (RPC), attach
-- follow actions and track; admins also change schemas and settings and
-- replay events.  docs/security.md has the table; test/t/041_privileges.pl
-- compares it with the catalog.

REVOKE ALL ON FUNCTION
    celerysalt_publish(text, jsonb, text, text),
    celerysalt_wake(),
    celerysalt_retry_unroutable(),
    celerysalt_replay(uuid),
    celerysalt_replay_since(timestamptz, timestamptz, text),
    celerysalt_dead_letter_retry(uuid),
    _celerysalt_registry_changed(),
    _celerysalt_check_names(text, text),
    _celerysalt_schema_first_difference(jsonb, jsonb),
    _celerysalt_schema_diff(jsonb, jsonb),
    _celerysalt_version_key(text),
    _celerysalt_topics_hint(),
    _celerysalt_raise_unknown(text, text),
    celerysalt_get_schema(text, text),
    celerysalt_validate_event(text, jsonb, text),
    celerysalt_event_errors(text, jsonb, text),
    _celerysalt_check_mode(text),
    celerysalt_get_compatibility(text),
    celerysalt_set_compatibility(text, text),
    _celerysalt_compat_changes(text, jsonb, text, text),
    celerysalt_check_compatibility(text, jsonb, text),
    _celerysalt_resolve(jsonb, jsonb),
    _celerysalt_type_label(jsonb, jsonb),
    _celerysalt_schema_fields(jsonb, jsonb, text, integer, text[]),
    _celerysalt_check_schema(text, text, text, jsonb),
    _celerysalt_raise_conflict(text, text, text, jsonb, jsonb),
    celerysalt_register_schema(text, jsonb, text, text, text, jsonb, jsonb, text, text, text, text),
    _celerysalt_property_order(json),
    celerysalt_register_property_order(text, text, json, json, json),
    celerysalt_deprecate_schema(text, text, text),
    celerysalt_track_publisher(text, text, text, text, text),
    celerysalt_track_subscriber(text, text, text, text),
    celerysalt_registry_compact(),
    _celerysalt_py_ident(text, boolean),
    _celerysalt_py_literal(jsonb),
    _celerysalt_py_constraints(jsonb),
    _celerysalt_py_type(jsonb, jsonb, jsonb),
    _celerysalt_py_class(jsonb, jsonb, text, jsonb, jsonb),
    _celerysalt_py_models(jsonb, jsonb, text, text[]),
    celerysalt_pydantic_model(text, text),
    _celerysalt_dot_id(text),
    _celerysalt_topic_matches(text, text),
    celerysalt_catalog_dot()
FROM PUBLIC;

GRANT SELECT ON celerysalt_topics, celerysalt_schemas, celerysalt_schema_fields,
                celerysalt_publishers, celerysalt_subscribers,
                celerysalt_catalog, celerysalt_catalog_fields, celerysalt_catalog_events,
                celerysalt_status, celerysalt_cluster_status
   TO celerysalt_reader;
GRANT EXECUTE ON FUNCTION
    _celerysalt_version_key(text),
    _celerysalt_topics_hint(),
    _celerysalt_raise_unknown(text, text),
    _celerysalt_schema_diff(jsonb, jsonb),
    _celerysalt_check_mode(text),
    _celerysalt_compat_changes(text, jsonb, text, text),
    _celerysalt_resolve(jsonb, jsonb),
    _celerysalt_py_ident(text, boolean),
    _celerysalt_py_literal(jsonb),
    _celerysalt_py_constraints(jsonb),
    _celerysalt_py_type(jsonb, jsonb, jsonb),
    _celerysalt_py_class(jsonb, jsonb, text, jsonb, jsonb),
    _celerysalt_py_models(jsonb, jsonb, text, text[]),
    _celerysalt_dot_id(text),
    celerysalt_get_schema(text, text),
    celerysalt_validate_event(text, jsonb, text),
    celerysalt_event_errors(text, jsonb, text),
    celerysalt_get_compatibility(text),
    celerysalt_check_compatibility(text, jsonb, text),
    celerysalt_pydantic_model(text, text),
    celerysalt_catalog_dot()
   TO celerysalt_reader;

-- celerysalt_publish runs as its caller: publishers need no privilege on the
-- outbox because the C code inserts the row itself after its checks (no SQL,
-- so no privilege check and no search_path), and reads the registry as the
-- registry's owner.  An event can only enter the outbox through it (or a
-- follow action), that is, validated against the registry.
GRANT EXECUTE ON FUNCTION _celerysalt_worker_state(), _celerysalt_cluster_state(), celerysalt_metrics()
   TO celerysalt_reader;
GRANT EXECUTE ON FUNCTION
    celerysalt_publish(text, jsonb, text, text),
    celerysalt_wake(),
    celerysalt_retry_unroutable(),
    _celerysalt_check_names(text, text),
    celerysalt_track_publisher(text, text, text, text, text),
    celerysalt_track_subscriber(text, text, text, text)
   TO celerysalt_publisher;

GRANT INSERT, UPDATE, DELETE ON celerysalt_topics, celerysalt_schemas, celerysalt_schema_fields,
                                celerysalt_publishers, celerysalt_subscribers
   TO celerysalt_admin;
GRANT USAGE ON SEQUENCE celerysalt_schemas_id_seq TO celerysalt_admin;
GRANT DELETE ON celerysalt_dead_letters, celerysalt_unroutable TO celerysalt_admin;
GRANT EXECUTE ON FUNCTION
    _celerysalt_registry_changed(),
    _celerysalt_schema_first_difference(jsonb, jsonb),
    _celerysalt_type_label(jsonb, jsonb),
    _celerysalt_schema_fields(jsonb, jsonb, text, integer, text[]),
    _celerysalt_check_schema(text, text, text, jsonb),
    _celerysalt_raise_conflict(text, text, text, jsonb, jsonb),
    celerysalt_register_schema(text, jsonb, text, text, text, jsonb, jsonb, text, text, text, text),
    _celerysalt_property_order(json),
    celerysalt_register_property_order(text, text, json, json, json),
    celerysalt_deprecate_schema(text, text, text),
    celerysalt_set_compatibility(text, text),
    celerysalt_registry_compact(),
    celerysalt_replay(uuid),
    celerysalt_replay_since(timestamptz, timestamptz, text),
    celerysalt_dead_letter_retry(uuid)
   TO celerysalt_admin;

-- RPC sends a task to a service with the broker's credentials: publishers only.
REVOKE ALL ON FUNCTION
    celerysalt_call(text, jsonb, interval, text),
    celerysalt_call_envelope(text, jsonb, interval, text),
    celerysalt_attach_follow_actions(regclass, name, boolean),
    celerysalt_detach_follow_actions(regclass),
    _celerysalt_follow_actions_trigger()
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    celerysalt_call(text, jsonb, interval, text),
    celerysalt_call_envelope(text, jsonb, interval, text),
    celerysalt_attach_follow_actions(regclass, name, boolean),
    celerysalt_detach_follow_actions(regclass),
    _celerysalt_follow_actions_trigger()
   TO celerysalt_publisher;

-- The roles reach the extension's objects in its schema (a schema of its own
-- grants nothing by itself; on public this changes nothing).
GRANT USAGE ON SCHEMA @extschema@ TO celerysalt_reader;

-- Readers see what was delivered, refused and what failed.
GRANT SELECT ON celerysalt_events, celerysalt_dead_letters,
                celerysalt_unroutable, celerysalt_unroutable_topics,
                celerysalt_follow_action_failures, celerysalt_follow_action_tables
   TO celerysalt_reader;
