"""Follow actions for SQLAlchemy 2 (docs/follow-actions.md, "SQLAlchemy").

With psycopg 3 (``postgresql+psycopg://``) or any PostgreSQL dialect:

- ``follow_action_rule(bind, ...)``: a rule built and checked by
  ``celerysalt_follow_action_rule`` (``bind`` is a Session or Connection).
- ``add_follow_action_rule(session, instance, ...)``: builds a rule and
  appends it to a persistent row in one ``UPDATE … SET rules = rules || …``
  (never overwriting what another session or the trigger did), then sets the
  attribute to the database's value as committed state, so the unit of work
  does not write it again.  A pending instance gets the rule in memory.
- ``attach(bind, table)`` / ``detach(bind, table)`` for Alembic
  (``attach(op.get_bind(), "orders")``) and ``attach_ddl(table)``, a DDL
  element for ``event.listen(table, "after_create", attach_ddl(table))``.

Tables are a ``Table``, a mapped class, or a name in SQL syntax.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Union

from sqlalchemy import DDL, Table, inspect, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql import bindparam, func

from celerysalt_pg import follow

TableLike = Union[Table, type, str]


def table_sql(table: TableLike) -> str:
    """A table in SQL syntax for ``regclass``: quoted name, with its schema."""
    if isinstance(table, str):
        return table
    if not isinstance(table, Table):
        table = inspect(table).local_table
    return follow.quote_table(table.name, table.schema)


def _json(value: Any) -> Optional[str]:
    return None if value is None else json.dumps(value)


def follow_action_rule(bind: Any, field_name: str, operator: str, topic: str, *,
                       table: Optional[TableLike] = None, value: Any = None, payload: Optional[dict] = None,
                       version: Optional[str] = None, persist: str = "True", from_value: Any = None,
                       to_value: Any = None, name: Optional[str] = None) -> dict:
    """``celerysalt_follow_action_rule(...)`` as a dict (see
    ``celerysalt_pg.follow.rule``); raises ``sqlalchemy.exc.DBAPIError`` with
    PostgreSQL's error for a rule the database refuses."""
    rule = bind.execute(text(
        "SELECT celerysalt_follow_action_rule(:field_name, :operator, :topic, CAST(:value AS jsonb),"
        " CAST(:payload AS jsonb), :version, :persist, CAST(:tbl AS regclass),"
        " CAST(:from_value AS jsonb), CAST(:to_value AS jsonb), :name)::text"),
        {"field_name": field_name, "operator": operator, "topic": topic, "value": _json(value),
         "payload": _json(payload), "version": version, "persist": persist,
         "tbl": None if table is None else table_sql(table), "from_value": _json(from_value),
         "to_value": _json(to_value), "name": name}).scalar_one()
    return json.loads(rule)  # type: ignore[no-any-return]


def add_follow_action_rule(session: Any, instance: Any, field_name: str, operator: str, topic: str, *,
                           rules_column: str = follow.RULES_COLUMN, **options: Any) -> dict:
    """Build a rule for ``instance``'s table and append it to that row.

    ``rules_column`` is the rules column's name in the table.  The keywords
    are ``follow_action_rule``'s.  Returns the rule."""
    state = inspect(instance)
    mapper = state.mapper
    table = mapper.local_table
    column = table.c[rules_column]
    key = mapper.get_property_by_column(column).key
    rule = follow_action_rule(session, field_name, operator, topic, table=table, **options)
    if not state.persistent:
        setattr(instance, key, list(getattr(instance, key) or []) + [rule])
        return rule
    pk = mapper.primary_key_from_instance(instance)
    stmt = (update(table)
            .where(*[col == val for col, val in zip(mapper.primary_key, pk)])
            .values({column: func.coalesce(column, text("'[]'::jsonb")).op("||")(
                bindparam("celerysalt_new_rules", [rule], type_=JSONB))})
            .returning(column))
    rules = session.execute(stmt).scalar_one()
    set_committed_value(instance, key, rules)
    return rule


def attach(bind: Any, table: TableLike, rules_column: str = follow.RULES_COLUMN, *,
           adopt_existing_rules: bool = False) -> None:
    """``celerysalt_attach_follow_actions`` (idempotent)."""
    bind.execute(text("SELECT celerysalt_attach_follow_actions(CAST(:tbl AS regclass), :col, :adopt)"),
                 {"tbl": table_sql(table), "col": rules_column, "adopt": adopt_existing_rules})


def detach(bind: Any, table: TableLike) -> None:
    """``celerysalt_detach_follow_actions`` (idempotent)."""
    bind.execute(text("SELECT celerysalt_detach_follow_actions(CAST(:tbl AS regclass))"),
                 {"tbl": table_sql(table)})


def attach_ddl(table: TableLike, rules_column: str = follow.RULES_COLUMN) -> DDL:
    """A DDL element attaching follow actions, e.g. for
    ``event.listen(Order.__table__, "after_create", attach_ddl(Order.__table__))``."""
    def literal(s: str) -> str:
        return "'" + s.replace("'", "''").replace("%", "%%") + "'"
    return DDL(f"SELECT celerysalt_attach_follow_actions({literal(table_sql(table))}::regclass,"
               f" {literal(rules_column)})")
