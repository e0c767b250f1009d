-- Differential test of the "pattern" keyword against PostgreSQL's ~ on the
-- syntax both read the same way: the validator's simple-pattern subset
-- (src/jsonschema/jsonschema_regex.c: ^, $, ASCII literals and escapes, ".", \d \w \D
-- \W, bracket expressions with ranges, \d and \w, greedy ? * + {n} {n,}
-- {n,m}) over strings without line terminators, in a database whose
-- LC_CTYPE is C (so \w and \d are ASCII in both dialects).  Every pattern
-- is tried against strings built to match it (then some mutated) and
-- random ones.  Prints "summary | pairs ... disagreements N" and up to 20
-- disagreements as "mismatch | pattern | string | validator | ~".
--
--   psql -v seed=0.5 -v patterns=5000 -v strings=20 -f test/jsonschema/regex_diff.sql
\set ON_ERROR_STOP 1
SELECT setseed(:seed);

-- atoms: ECMA/ARE text and characters each repetition may be made of
CREATE TEMP TABLE atom (re text, sample text[]);
INSERT INTO atom VALUES
    ('a', '{a}'), ('b', '{b}'), ('x', '{x}'), ('0', '{0}'), ('-', '{-}'), ('_', '{_}'),
    ('\.', '{.}'), ('\-', '{-}'), ('.', '{a,é,-," ",0}'),
    ('[ab]', '{a,b}'), ('[0-9]', '{0,1,9}'), ('[^a]', '{b,é,0,-}'), ('[a-c1]', '{a,b,c,1}'),
    ('[^0-9x]', '{a,é,-,_}'), ('[\d_]', '{1,_}'), ('[\w.]', '{a,Z,.,_}'), ('[-a]', '{-,a}'),
    ('\d', '{0,5}'), ('\w', '{a,_,1,Q}'), ('\D', '{a,é,-," "}'), ('\W', '{-,é," ",.}');

-- quantifiers: text, min, max (-1: unbounded)
CREATE TEMP TABLE quant (q text, lo int, hi int);
INSERT INTO quant VALUES
    ('', 1, 1), ('', 1, 1), ('', 1, 1), ('?', 0, 1), ('*', 0, -1), ('+', 1, -1),
    ('{2}', 2, 2), ('{0,2}', 0, 2), ('{1,}', 1, -1), ('{2,3}', 2, 3), ('{0}', 0, 0);

CREATE FUNCTION pg_temp.pick(a text[]) RETURNS text LANGUAGE sql AS
    $$ SELECT a[1 + floor(random() * cardinality(a))::int] $$;

-- a random string of 0..n characters
CREATE FUNCTION pg_temp.rnd_string(n int) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(pg_temp.pick('{a,b,x,0,1,9,-,.,_," ",é,Z}'), ''), '')
      FROM generate_series(1, floor(random() * (n + 1))::int) $$;

-- one of a string's characters replaced, removed or inserted
CREATE FUNCTION pg_temp.mutate(s text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    i int := 1 + floor(random() * (length(s) + 1))::int;
    c text := pg_temp.pick('{a,b,x,0,-,.,é,_}');
    r float8 := random();
BEGIN
    IF r < 0.4 THEN
        RETURN overlay(s placing c from i for 1);
    ELSIF r < 0.7 THEN
        RETURN overlay(s placing '' from i for 1);
    END IF;
    RETURN overlay(s placing c from i for 0);
END $$;

-- a pattern and strings for it: nstrings / 2 built along the pattern (a
-- quarter of them mutated), the rest random
CREATE FUNCTION pg_temp.rnd_case(nstrings int, OUT p text, OUT strs text[])
LANGUAGE plpgsql AS $$
DECLARE
    natoms int := 1 + floor(random() * 5)::int;
    anchor_start bool := random() < 0.5;
    anchor_end bool := random() < 0.5;
    atoms text[] := '{}';
    samples text[][] := '{}';
    counts int[] := '{}';
    a record;
    q record;
    body text;
    k int;
BEGIN
    p := CASE WHEN anchor_start THEN '^' ELSE '' END;
    FOR i IN 1..natoms LOOP
        SELECT * INTO a FROM atom ORDER BY random() LIMIT 1;
        SELECT * INTO q FROM quant ORDER BY random() LIMIT 1;
        p := p || a.re || q.q;
        atoms := atoms || a.re;
        samples := samples || ARRAY[array_to_string(a.sample, chr(1))];
        counts := counts || q.lo || q.hi;
    END LOOP;
    IF anchor_end THEN
        p := p || '$';
    END IF;
    strs := '{}';
    FOR j IN 1..nstrings / 2 LOOP
        body := '';
        FOR i IN 1..natoms LOOP
            k := counts[2 * i - 1] + floor(random() * (CASE WHEN counts[2 * i] < 0 THEN 4
                                                        ELSE counts[2 * i] - counts[2 * i - 1] + 1 END))::int;
            FOR r IN 1..k LOOP
                body := body || pg_temp.pick(string_to_array(samples[i], chr(1)));
            END LOOP;
        END LOOP;
        IF NOT anchor_start AND random() < 0.5 THEN
            body := pg_temp.rnd_string(2) || body;
        END IF;
        IF NOT anchor_end AND random() < 0.5 THEN
            body := body || pg_temp.rnd_string(2);
        END IF;
        IF random() < 0.25 THEN
            body := pg_temp.mutate(body);
        END IF;
        strs := strs || body;
    END LOOP;
    FOR j IN nstrings / 2 + 1..nstrings LOOP
        strs := strs || pg_temp.rnd_string(8);
    END LOOP;
END $$;

CREATE TEMP TABLE pairs AS
SELECT c.i, c.p, s
  FROM (SELECT i, (pg_temp.rnd_case(:strings)).* FROM generate_series(1, :patterns) AS i) AS c,
       unnest(c.strs) AS s;

CREATE TEMP TABLE outcome AS
SELECT i, p, s,
       celerysalt_validate(jsonb_build_object('pattern', p), to_jsonb(s)) AS validator,
       s ~ p AS postgres
  FROM pairs
 ORDER BY i;

SELECT 'summary' AS summary,
       format('pairs %s patterns %s matches %s disagreements %s',
              count(*), count(DISTINCT p), count(*) FILTER (WHERE postgres),
              count(*) FILTER (WHERE validator IS DISTINCT FROM postgres)) AS result
  FROM outcome;

SELECT 'mismatch' AS mismatch, p, s, validator, postgres
  FROM outcome
 WHERE validator IS DISTINCT FROM postgres
 ORDER BY i
 LIMIT 20;
