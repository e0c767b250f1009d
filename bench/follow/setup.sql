-- Follow-action benchmark: six identical tables, each row carrying the same 5 rules,
-- none of which matches the benchmark's UPDATE (status open <-> pending).
-- :noop_so is the path of noop_trigger.so.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;

CREATE FUNCTION bench_noop_trigger() RETURNS trigger AS :'noop_so', 'bench_noop_trigger' LANGUAGE C;

-- The same semantics as the C trigger, in PL/pgSQL (operators, list unwrapping, JSON
-- comparison via to_jsonb, persist True/False/ForceFalse, rules added by the UPDATE not
-- firing, default payload, celerysalt_publish in the same transaction).
CREATE FUNCTION bench_plpgsql_follow() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rules    jsonb := OLD.on_change_rules;
    o        jsonb;
    n        jsonb;
    rule     jsonb;
    oldv     jsonb;
    newv     jsonb;
    val      jsonb;
    op       text;
    persist  jsonb;
    matches  boolean;
    fired    boolean;
    row_changed boolean;
    keep     jsonb := '[]';
    removed  boolean := false;
BEGIN
    IF rules IS NULL OR jsonb_typeof(rules) <> 'array' OR jsonb_array_length(rules) = 0 THEN
        RETURN NEW;
    END IF;
    IF NEW.on_change_rules IS DISTINCT FROM rules THEN
        RETURN NEW;   -- simplification: an UPDATE that edits the rules evaluates none
    END IF;
    o := to_jsonb(OLD);
    n := to_jsonb(NEW);
    row_changed := (o - 'on_change_rules') <> (n - 'on_change_rules');
    IF NOT row_changed THEN
        RETURN NEW;
    END IF;
    FOR rule IN SELECT e FROM jsonb_array_elements(rules) e LOOP
        oldv := coalesce(o -> (rule->>'field_name'), 'null');
        newv := coalesce(n -> (rule->>'field_name'), 'null');
        persist := coalesce(rule->'persist', '"True"');
        fired := false;
        IF oldv <> newv THEN
            op := rule->>'operator';
            val := rule->'value';
            IF op IN ('eql', 'not_eql', 'changed_to') AND jsonb_typeof(val) = 'array'
               AND jsonb_array_length(val) = 1 THEN
                val := val->0;
            END IF;
            matches := CASE op
                WHEN 'eql' THEN CASE WHEN jsonb_typeof(val) = 'array'
                                     THEN EXISTS (SELECT 1 FROM jsonb_array_elements(val) x WHERE x = newv)
                                     ELSE newv = val END
                WHEN 'not_eql' THEN NOT CASE WHEN jsonb_typeof(val) = 'array'
                                     THEN EXISTS (SELECT 1 FROM jsonb_array_elements(val) x WHERE x = newv)
                                     ELSE newv = val END
                WHEN 'updated' THEN true
                WHEN 'deleted' THEN newv = 'null' OR newv = '""'
                WHEN 'changed_to' THEN CASE WHEN jsonb_typeof(val) = 'array'
                                     THEN EXISTS (SELECT 1 FROM jsonb_array_elements(val) x WHERE x = newv)
                                     ELSE newv = val END
                                   AND (rule->'from' IS NULL OR oldv = rule->'from')
                WHEN 'changed_from' THEN oldv = val AND (rule->'to' IS NULL OR newv = rule->'to')
                WHEN 'in' THEN EXISTS (SELECT 1 FROM jsonb_array_elements(val) x WHERE x = newv)
                WHEN 'not_in' THEN NOT EXISTS (SELECT 1 FROM jsonb_array_elements(val) x WHERE x = newv)
                WHEN 'gt' THEN jsonb_typeof(newv) = jsonb_typeof(val) AND jsonb_typeof(val) IN ('number', 'string') AND newv > val
                WHEN 'gte' THEN jsonb_typeof(newv) = jsonb_typeof(val) AND jsonb_typeof(val) IN ('number', 'string') AND newv >= val
                WHEN 'lt' THEN jsonb_typeof(newv) = jsonb_typeof(val) AND jsonb_typeof(val) IN ('number', 'string') AND newv < val
                WHEN 'lte' THEN jsonb_typeof(newv) = jsonb_typeof(val) AND jsonb_typeof(val) IN ('number', 'string') AND newv <= val
                WHEN 'is_null' THEN newv = 'null'
                WHEN 'is_not_null' THEN newv <> 'null'
                ELSE NULL END;
            IF matches IS NULL THEN
                RAISE EXCEPTION 'unknown follow-action operator "%"', op;
            END IF;
            IF matches THEN
                PERFORM celerysalt_publish(rule->>'topic',
                    jsonb_build_object('table', TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, 'pk', n->'id',
                                       'field', rule->>'field_name', 'old', oldv, 'new', newv),
                    rule->>'version');
                fired := true;
            END IF;
        END IF;
        IF (fired AND persist IN ('"False"', 'false')) OR persist = '"ForceFalse"' THEN
            removed := true;
        ELSE
            keep := keep || jsonb_build_array(rule);
        END IF;
    END LOOP;
    IF removed THEN
        NEW.on_change_rules := keep;
    END IF;
    RETURN NEW;
END
$$;

CREATE TABLE bench_template (
    id              int PRIMARY KEY,
    status          text NOT NULL,
    amount          numeric NOT NULL,
    email           text NOT NULL,
    created_at      timestamptz NOT NULL,
    on_change_rules jsonb NOT NULL
);
INSERT INTO bench_template
SELECT i, 'open', (i % 1000) + 0.99, 'user' || i || '@example.com', '2024-01-01'::timestamptz + i * interval '1 minute',
       jsonb_build_array(
           celerysalt_follow_action_rule('status', 'eql', 'bench.cancelled', '"cancelled"', persist => 'False'),
           celerysalt_follow_action_rule('status', 'changed_to', 'bench.refunded', '"refunded"', from_value => '"paid"'),
           celerysalt_follow_action_rule('status', 'in', 'bench.shipped', '["shipped", "delivered"]'),
           celerysalt_follow_action_rule('amount', 'gt', 'bench.big', '1000000'),
           celerysalt_follow_action_rule('email', 'updated', 'bench.email',
               payload => '{"id": {"$pk": true}, "old": {"$old": "email"}, "new": {"$new": "email"}}'))
  FROM generate_series(1, :rows) i;

CREATE TABLE bench_none (LIKE bench_template INCLUDING ALL);
CREATE TABLE bench_noop (LIKE bench_template INCLUDING ALL);
CREATE TABLE bench_c (LIKE bench_template INCLUDING ALL);
CREATE TABLE bench_plpgsql (LIKE bench_template INCLUDING ALL);
-- the floors of the other trigger designs: a no-op AFTER row trigger (no row
-- lock, but the event queue and two tuple fetches per row) and a no-op
-- statement trigger with transition tables (both row images copied per row)
CREATE TABLE bench_noop_after (LIKE bench_template INCLUDING ALL);
CREATE TABLE bench_noop_stmt (LIKE bench_template INCLUDING ALL);
INSERT INTO bench_noop_after SELECT * FROM bench_template;
INSERT INTO bench_noop_stmt SELECT * FROM bench_template;
INSERT INTO bench_none SELECT * FROM bench_template;
INSERT INTO bench_noop SELECT * FROM bench_template;
INSERT INTO bench_c SELECT * FROM bench_template;
INSERT INTO bench_plpgsql SELECT * FROM bench_template;
DROP TABLE bench_template;

CREATE TRIGGER noop BEFORE UPDATE ON bench_noop FOR EACH ROW EXECUTE FUNCTION bench_noop_trigger();
CREATE TRIGGER noop AFTER UPDATE ON bench_noop_after FOR EACH ROW EXECUTE FUNCTION bench_noop_trigger();
CREATE TRIGGER noop AFTER UPDATE ON bench_noop_stmt REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION bench_noop_trigger();
SELECT celerysalt_attach_follow_actions('bench_c', adopt_existing_rules => true);
CREATE TRIGGER zz_plpgsql_follow BEFORE UPDATE ON bench_plpgsql FOR EACH ROW EXECUTE FUNCTION bench_plpgsql_follow();
VACUUM ANALYZE bench_none, bench_noop, bench_noop_after, bench_noop_stmt, bench_c, bench_plpgsql;
SELECT pg_size_pretty(pg_table_size('bench_c')) AS table_size,
       pg_column_size(on_change_rules) AS rules_bytes_per_row FROM bench_c LIMIT 1;
