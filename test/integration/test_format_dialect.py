"""celerysalt.format_dialect against real pydantic 2 (issue 15 item 5).

A pydantic model's model_json_schema() says "format": "date-time" for a
datetime field, yet pydantic accepts (and sends, for a naive datetime)
strings RFC 3339 refuses.  Under the default dialect, pydantic, the
registry must accept exactly what a pydantic subscriber accepts for
date-time, time and duration; under rfc3339 it follows RFC 3339.  Compared
string by string: hand-picked forms plus mutations of them (fixed seed).
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import psycopg
import pydantic
import pytest
from pydantic import BaseModel, TypeAdapter

TOPIC = "csit.fmt.shift"


class Shift(BaseModel):
    starts_at: dt.datetime
    opens: dt.time | None = None
    length: dt.timedelta | None = None


SEEDS = {
    "starts_at": ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00", "2024-05-01 10:00:00.123456",
                  "2024-05-01t10:00", "2024-05-01_10:00:00,5+0200", "2024-05-01", "1714557600",
                  "-1714557600.5", ".5", "1.", "20000000001", "253402300799999",
                  "-62135596800000", "2024-05-01T10:00:00.1234567890-23:59", "2024-05-01T23:59:60Z",
                  "2024-05-01T10:00:00+02", "0001-01-01T00:00:00", "2024-02-29T00:00:00z",
                  "2024-05-01T10:00+02:00"],
    "opens": ["08:30", "08:30:00.5", "08:30:00Z", "08:30:00+0100", "23:59:59,999999-23:59",
              "08:30:00.1234567"],
    "length": ["P1D", "PT1H0.5S", "-P1D", "+P1W2D", "P1DT", "PT1M1H", "P1Y2M3DT4H5M6.7S", "P1,5D",
               "1 day, 10:00:00", "2d", "3 DAYS,01:02:03", "10:00", "100:00:00.5", "1:00:00",
               "-10:00:00", "P999999999D", "PT4294967295S", "1d 23:59:59.5", "PT1.S"],
}
ALPHABET = "0123456789-:.,+ TtZzPYMWDHS_dayx"
ADAPTERS = {"starts_at": TypeAdapter(dt.datetime), "opens": TypeAdapter(dt.time),
            "length": TypeAdapter(dt.timedelta)}


def mutations(seed: str, rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        s = list(seed)
        for _ in range(rng.randint(1, 3)):
            op = rng.randrange(3)
            i = rng.randrange(len(s) + 1)
            if op == 0 and s:
                del s[min(i, len(s) - 1)]
            elif op == 1:
                s.insert(i, rng.choice(ALPHABET))
            elif s:
                s[min(i, len(s) - 1)] = rng.choice(ALPHABET)
        out.append("".join(s))
    return out


def corpus() -> dict[str, list[str]]:
    rng = random.Random(15)
    result = {}
    for field, seeds in SEEDS.items():
        values = list(seeds)
        for seed in seeds:
            values += mutations(seed, rng, 150)
        result[field] = sorted(set(values))
    return result


def pydantic_accepts(field: str, value: str) -> bool:
    try:
        ADAPTERS[field].validate_json(json.dumps(value))
        return True
    except pydantic.ValidationError:
        return False


@pytest.fixture
def fmt_pg(pg_factory):
    cluster = pg_factory(conf={"celerysalt.broker_url": "amqp://guest:guest@127.0.0.1:1//"})
    cluster.execute("SELECT celerysalt_register_schema(%s, %s::jsonb)",
                    (TOPIC, json.dumps(Shift.model_json_schema())))
    return cluster


def registry_verdicts(cluster, field: str, values: list[str], dialect: str) -> dict[str, bool]:
    base = {"starts_at": "2024-05-01T10:00:00Z"}
    with cluster.connect() as conn:
        conn.execute("SELECT set_config('celerysalt.format_dialect', %s, false)", (dialect,))
        rows = conn.execute(
            "SELECT v, celerysalt_validate_event(%s, %s::jsonb || jsonb_build_object(%s::text, v))"
            "  FROM unnest(%s::text[]) v", (TOPIC, json.dumps(base), field, values)).fetchall()
    return dict(rows)


@pytest.mark.parametrize("field", sorted(SEEDS))
def test_pydantic_dialect_accepts_what_pydantic_accepts(fmt_pg, field):
    values = corpus()[field]
    verdicts = registry_verdicts(fmt_pg, field, values, "pydantic")
    wrong = [(v, verdicts[v]) for v in values if verdicts[v] != pydantic_accepts(field, v)]
    assert not wrong, f"{len(wrong)} of {len(values)} disagree (value, registry): {wrong[:40]}"
    assert set(verdicts.values()) == {True, False}


@pytest.mark.parametrize("field", sorted(SEEDS))
def test_rfc3339_dialect_is_the_strict_validator(fmt_pg, field):
    values = corpus()[field]
    verdicts = registry_verdicts(fmt_pg, field, values, "rfc3339")
    fmt = Shift.model_json_schema()["properties"][field]
    fmt = fmt.get("format") or next(a["format"] for a in fmt["anyOf"] if "format" in a)
    strict = dict(fmt_pg.execute(
        "SELECT v, celerysalt_validate(jsonb_build_object('format', %s::text), to_jsonb(v), true)"
        "  FROM unnest(%s::text[]) v", (fmt, values)))
    assert verdicts == strict


def test_timestamp_column_published_against_a_pydantic_datetime(fmt_pg):
    """A timestamp column through jsonb_build_object: what pydantic dumps for a naive datetime."""
    with fmt_pg.connect(autocommit=False) as conn:
        conn.execute("CREATE TEMP TABLE shifts (starts_at timestamp, length interval)")
        conn.execute("INSERT INTO shifts VALUES ('2024-05-01 10:00:00.25', '1 hour')")
        payload = conn.execute("SELECT jsonb_build_object('starts_at', starts_at) FROM shifts").fetchone()[0]
        assert payload == {"starts_at": "2024-05-01T10:00:00.25"}
        event_id = conn.execute("SELECT celerysalt_publish(%s, jsonb_build_object('starts_at', starts_at))"
                                "  FROM shifts", (TOPIC,)).fetchone()[0]
        assert event_id is not None
        # a pydantic subscriber reads it back
        assert Shift.model_validate(payload).starts_at == dt.datetime(2024, 5, 1, 10, 0, 0, 250000)
        conn.execute("SET celerysalt.format_dialect = rfc3339")
        with pytest.raises(psycopg.errors.CheckViolation) as err:
            conn.execute("SELECT celerysalt_publish(%s, jsonb_build_object('starts_at', starts_at))"
                         "  FROM shifts", (TOPIC,))
        assert '/starts_at: string is not a valid "date-time"' in err.value.diag.message_detail
        conn.rollback()


def test_what_pydantic_dumps_validates(fmt_pg):
    """model_dump(mode="json") of naive, aware, fractional and negative values."""
    samples = [
        Shift(starts_at=dt.datetime(2024, 5, 1, 10), opens=dt.time(8, 30), length=dt.timedelta(hours=1)),
        Shift(starts_at=dt.datetime(2024, 5, 1, 10, 0, 0, 5, tzinfo=dt.timezone.utc),
              opens=dt.time(8, 30, 0, 500000, tzinfo=dt.timezone(dt.timedelta(hours=-3))),
              length=dt.timedelta(days=-1, seconds=5, microseconds=7)),
        Shift(starts_at=dt.datetime(1, 1, 1), length=dt.timedelta(days=999999999, seconds=86399)),
        Shift(starts_at=dt.datetime(9999, 12, 31, 23, 59, 59, 999999), length=dt.timedelta(0)),
    ]
    for s in samples:
        dumped = s.model_dump(mode="json")
        assert fmt_pg.scalar("SELECT celerysalt_event_errors(%s, %s::jsonb)",
                             (TOPIC, json.dumps(dumped))) == [], dumped
        assert Shift.model_validate(dumped) == s
