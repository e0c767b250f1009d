"""Follow actions over a plain database connection (docs/follow-actions.md).

Small typed wrappers of the SQL API, usable with a psycopg 3 connection or
cursor, or any DB-API cursor that takes ``%s`` parameters (Django's):

- ``rule()`` builds a rule with ``celerysalt_follow_action_rule`` and returns
  it as a dict: the database checks it (operator, topic, operands, payload
  template and, with ``table``, the columns it names) and raises otherwise.
- ``check()`` checks a rule written by hand (``celerysalt_follow_action_check``).
- ``attach()`` / ``detach()`` run ``celerysalt_attach_follow_actions`` /
  ``celerysalt_detach_follow_actions`` (migrations; the caller needs
  ``celerysalt_publisher`` and must own the table).

JSON goes to the server as text with a ``::jsonb`` cast and comes back parsed
whether the driver returns jsonb as text (Django registers such a loader) or
as Python objects (psycopg's default), so one code path serves every caller.
Tables are given in SQL syntax, as for a ``regclass`` (``orders``,
``shop."Order"``); ``quote_table()`` makes that text from a bare name.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Protocol, Sequence

RULES_COLUMN = "on_change_rules"


class Cursor(Protocol):
    """The part of a DB-API cursor used here."""

    def execute(self, query: Any, params: Any = ...) -> Any: ...

    def fetchone(self) -> Any: ...


def quote_table(name: str, schema: Optional[str] = None) -> str:
    """SQL text naming a table whose bare name (and schema) are given:
    ``quote_table('Order', 'shop')`` -> ``"shop"."Order"``."""
    def ident(part: str) -> str:
        return '"' + part.replace('"', '""') + '"'
    return ident(name) if schema is None else f"{ident(schema)}.{ident(name)}"


def _jsonb_text(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value)


def _parsed(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes, bytearray)) else value


def fetch_one(conn: Any, query: str, params: Sequence[Any]) -> Any:
    """Run a query on a connection (anything with ``cursor()``) or a cursor;
    return its first row (None without rows)."""
    if hasattr(conn, "fetchone"):
        conn.execute(query, params)
        return conn.fetchone()
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchone() if cur.description else None


def rule(conn: Any, field_name: str, operator: str, topic: str, *,
         value: Any = None, payload: Optional[dict] = None, version: Optional[str] = None,
         persist: str = "True", table: Optional[str] = None, from_value: Any = None,
         to_value: Any = None, name: Optional[str] = None) -> dict:
    """A follow-action rule built and checked by ``celerysalt_follow_action_rule``.

    ``value``, ``from_value``, ``to_value`` and ``payload`` are Python values
    sent as JSON; None leaves the member out (``updated``, ``deleted``,
    ``is_null`` and ``is_not_null`` take no value; compare with JSON null
    through ``is_null``).  With ``table`` (SQL syntax), the columns the rule
    reads are checked against that table.  Raises the driver's error (SQLSTATE
    and message from PostgreSQL) for a rule the database refuses.
    """
    row = fetch_one(conn,
                    "SELECT celerysalt_follow_action_rule(%s, %s, %s, %s::jsonb, %s::jsonb, %s, %s,"
                    " %s::regclass, %s::jsonb, %s::jsonb, %s)::text",
                    [field_name, operator, topic, _jsonb_text(value), _jsonb_text(payload), version,
                     persist, table, _jsonb_text(from_value), _jsonb_text(to_value), name])
    return _parsed(row[0])


def check(conn: Any, rule: dict, table: Optional[str] = None) -> dict:
    """``celerysalt_follow_action_check(rule, table)``: returns the rule as the
    database reads it, or raises the driver's error."""
    row = fetch_one(conn, "SELECT celerysalt_follow_action_check(%s::jsonb, %s::regclass)::text",
                    [json.dumps(rule), table])
    return _parsed(row[0])


def attach(conn: Any, table: str, rules_column: str = RULES_COLUMN, *,
           adopt_existing_rules: bool = False) -> None:
    """``celerysalt_attach_follow_actions``: evaluate the rules stored in
    ``rules_column`` on every UPDATE of ``table`` (idempotent).  Refuses a
    table whose rows already hold rules unless ``adopt_existing_rules``."""
    fetch_one(conn, "SELECT celerysalt_attach_follow_actions(%s::regclass, %s, %s)",
              [table, rules_column, adopt_existing_rules])


def detach(conn: Any, table: str) -> None:
    """``celerysalt_detach_follow_actions``: drop the trigger (idempotent);
    the rules column is left as it is."""
    fetch_one(conn, "SELECT celerysalt_detach_follow_actions(%s::regclass)", [table])
