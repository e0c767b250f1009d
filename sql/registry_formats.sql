-- celerysalt.format_dialect (issue 15 item 5): the registry reads date-time,
-- time and duration as pydantic 2 does by default, as RFC 3339 does when set
-- to rfc3339.  celerysalt_validate stays RFC 3339 whatever the setting
-- (IMMUTABLE).  test/integration/test_format_dialect.py holds the pydantic
-- reading to real pydantic.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

SHOW celerysalt.format_dialect;

-- model_json_schema() of: class Shift(BaseModel): starts_at: datetime;
-- opens: time; length: timedelta; day: date
SELECT celerysalt_register_schema('regress.fmt.shift', '{
  "properties": {"starts_at": {"format": "date-time", "title": "Starts At", "type": "string"},
                 "opens": {"format": "time", "title": "Opens", "type": "string"},
                 "length": {"format": "duration", "title": "Length", "type": "string"},
                 "day": {"format": "date", "title": "Day", "type": "string"}},
  "required": ["starts_at"], "title": "Shift", "type": "object"}')->'created' AS created;

-- A timestamp column as jsonb_build_object writes it: no offset.
CREATE TEMP TABLE shifts (starts_at timestamp, at_tz timestamptz, opens time, length interval);
INSERT INTO shifts VALUES ('2024-05-01 10:00:00', '2024-05-01 10:00:00+02', '08:30', '1 hour');
SELECT jsonb_build_object('starts_at', starts_at) AS payload,
       celerysalt_validate_event('regress.fmt.shift', jsonb_build_object('starts_at', starts_at)) AS pydantic
  FROM shifts;
-- ... published through celerysalt_publish
BEGIN;
SELECT celerysalt_publish('regress.fmt.shift', jsonb_build_object('starts_at', starts_at)) IS NOT NULL AS published
  FROM shifts;
ROLLBACK;

-- The strict reading refuses it, with the same 23514 as any invalid payload.
SET celerysalt.format_dialect = rfc3339;
SELECT celerysalt_validate_event('regress.fmt.shift', jsonb_build_object('starts_at', starts_at)) AS rfc3339,
       celerysalt_validate_event('regress.fmt.shift', jsonb_build_object('starts_at', at_tz)) AS with_offset
  FROM shifts;
SELECT * FROM pg_temp.try($q$SELECT celerysalt_publish('regress.fmt.shift', jsonb_build_object('starts_at', starts_at)) FROM shifts$q$);
SELECT celerysalt_event_errors('regress.fmt.shift', jsonb_build_object('starts_at', starts_at)) FROM shifts;
RESET celerysalt.format_dialect;
SELECT celerysalt_event_errors('regress.fmt.shift', jsonb_build_object('starts_at', starts_at)) FROM shifts;

-- Samples: pydantic 2.14 accepts the first group, refuses the second.
CREATE TEMP TABLE samples (field text, value text, pydantic_ok boolean);
INSERT INTO samples VALUES
  ('starts_at', '2024-05-01T10:00:00Z', true),
  ('starts_at', '2024-05-01T10:00:00', true),
  ('starts_at', '2024-05-01 10:00:00.123456', true),
  ('starts_at', '2024-05-01t10:00', true),
  ('starts_at', '2024-05-01_10:00:00,5+0200', true),
  ('starts_at', '2024-05-01', true),
  ('starts_at', '1714557600', true),
  ('starts_at', '-1714557600.5', true),
  ('starts_at', '2024-05-01T10:00:00.1234567890-23:59', true),
  ('opens', '08:30', true),
  ('opens', '08:30:00.5', true),
  ('opens', '08:30:00Z', true),
  ('opens', '08:30:00+0100', true),
  ('length', 'P1D', true),
  ('length', 'PT1H0.5S', true),
  ('length', '-P1D', true),
  ('length', 'P1W2D', true),
  ('length', 'P1DT', true),
  ('length', 'PT1M1H', true),
  ('length', '1 day, 10:00:00', true),
  ('length', '2d', true),
  ('length', '10:00', true),
  ('length', '100:00:00.5', true),
  ('length', '1:00:00', true),
  ('starts_at', '2024-05-01T23:59:60Z', false),
  ('starts_at', '2024-05-01T10', false),
  ('starts_at', '2024-05-01T10:00:00+02', false),
  ('starts_at', '2024-05-01T10:00:00 +02:00', false),
  ('starts_at', '2024-02-30T10:00:00', false),
  ('starts_at', '0000-01-01T00:00:00', false),
  ('starts_at', '2024-05-01T', false),
  ('starts_at', '1e5', false),
  ('starts_at', '253402300800000', false),
  ('starts_at', 'yesterday', false),
  ('opens', '08', false),
  ('opens', '24:00:00', false),
  ('opens', '08:30:60', false),
  ('opens', '08:30:00.', false),
  ('length', 'P', false),
  ('length', 'PT', false),
  ('length', 'P1.5DT1H', false),
  ('length', 'p1d', false),
  ('length', 'PT1D', false),
  ('length', '1:00', false),
  ('length', '1 week', false),
  ('length', '1 day, 24:00:00', false),
  ('length', 'P1000000000D', false),
  ('length', '3600', false);
SELECT field, value, pydantic_ok,
       celerysalt_validate_event('regress.fmt.shift',
                                 jsonb_build_object('starts_at', '2024-05-01T10:00:00Z', field, value)) AS pydantic,
       celerysalt_validate(jsonb_build_object('format', celerysalt_get_schema('regress.fmt.shift')->'properties'->field->>'format'),
                           to_jsonb(value), true) AS rfc3339
  FROM samples ORDER BY pydantic_ok DESC, field, value;
SELECT count(*) AS disagreements FROM samples
 WHERE celerysalt_validate_event('regress.fmt.shift', jsonb_build_object('starts_at', '2024-05-01T10:00:00Z', field, value))
       IS DISTINCT FROM pydantic_ok;

-- date is RFC 3339 in both dialects; celerysalt_validate ignores the setting.
SELECT celerysalt_validate_event('regress.fmt.shift', '{"starts_at": "2024-05-01", "day": "2024-05-01"}') AS date_ok,
       celerysalt_validate_event('regress.fmt.shift', '{"starts_at": "2024-05-01", "day": "2024-05-01T00:00:00"}') AS date_time_as_date,
       celerysalt_validate('{"format": "date-time"}', '"2024-05-01T10:00:00"', true) AS validate_strict;

-- The setting: superuser only (GRANT SET ON PARAMETER to delegate); two values.
SELECT * FROM pg_temp.try($q$SET celerysalt.format_dialect = 'iso8601'$q$);
CREATE ROLE regress_fmt_pub LOGIN IN ROLE celerysalt_publisher;
SET SESSION AUTHORIZATION regress_fmt_pub;
SELECT * FROM pg_temp.try($q$SET celerysalt.format_dialect = 'rfc3339'$q$);
RESET SESSION AUTHORIZATION;
DROP ROLE regress_fmt_pub;

-- celerysalt_event_errors: NULLs and unknown topics as before.
SELECT celerysalt_event_errors(NULL, '{}') IS NULL AS null_topic,
       celerysalt_event_errors('regress.fmt.shift', NULL) IS NULL AS null_payload,
       celerysalt_event_errors('regress.fmt.shift', '{"starts_at": "x"}', NULL) AS null_version_is_latest;
SELECT state, message FROM pg_temp.try($q$SELECT celerysalt_event_errors('regress.fmt.nope', '{}')$q$);
SELECT * FROM pg_temp.try($q$SELECT celerysalt_event_errors('regress.fmt.shift', '{}', 'v7')$q$);

-- Leave no topic behind for the files after this one.
DELETE FROM celerysalt_schemas WHERE topic LIKE 'regress.fmt.%';
DELETE FROM celerysalt_topics WHERE topic LIKE 'regress.fmt.%';
