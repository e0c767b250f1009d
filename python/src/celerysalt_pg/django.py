"""Follow actions for Django models (docs/follow-actions.md, "Django").

- ``FollowActionsMixin``: for a model with a JSONField rules column (default
  ``on_change_rules``; set ``follow_rules_field`` to change it).  Put it before
  ``models.Model`` in the bases.  ``add_follow_action_rule()`` builds the rule
  with ``celerysalt_follow_action_rule`` (the database checks it against the
  model's table) and appends it to the row in one SQL statement
  (``rules || new``), so it never overwrites a rule another session added or
  the trigger removed.  ``save()`` leaves the rules column out of its UPDATE
  unless this instance changed it since it was loaded: the trigger rewrites
  the column (a fired ``persist`` False rule is removed in the same UPDATE),
  so the value an instance holds is usually stale, and writing it back would
  bring removed rules back.
- ``AttachFollowActions``: a migration operation that attaches the trigger
  (``celerysalt_attach_follow_actions``) and detaches it when reversed.

Imports Django only; the database calls go through the model's connection,
so any Django PostgreSQL backend (psycopg 3 or 2) works.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING, Any, Optional

from django.core.exceptions import FieldDoesNotExist
from django.db import connections, router
from django.db.migrations.operations.base import Operation

from celerysalt_pg import follow

if TYPE_CHECKING:              # the mixin is always used with models.Model
    from django.db.models import Model as _Base
else:
    _Base = object

_UNSET: Any = object()
_SAVE_ARGS = ("force_insert", "force_update", "using", "update_fields")


class FollowActionsMixin(_Base):
    """Model mixin for follow-action rules stored in a JSONField.

    ::

        class Order(FollowActionsMixin, models.Model):
            status = models.CharField(max_length=20)
            on_change_rules = models.JSONField(default=list)

        order.add_follow_action_rule("status", "changed_to", "order.paid", value="paid",
                                     payload={"order_id": {"$pk": True}}, persist="False")
        order.status = "paid"
        order.save()            # fires; the stale rules value is not written back
    """

    follow_rules_field = follow.RULES_COLUMN

    # -- rules
    @classmethod
    def follow_action_rule(cls, field_name: str, operator: str, topic: str, *, using: Optional[str] = None,
                           **options: Any) -> dict:
        """A rule for this model's table, built and checked by the database
        (``celerysalt_pg.follow.rule``'s keywords: value, payload, version,
        persist, from_value, to_value, name).  For rows created with rules."""
        alias = using or router.db_for_write(cls)
        with connections[alias].cursor() as cur:
            return follow.rule(cur, field_name, operator, topic, table=_table_sql(cls), **options)

    def add_follow_action_rule(self, field_name: str, operator: str, topic: str, *,
                               using: Optional[str] = None, **options: Any) -> dict:
        """Build a rule (``follow_action_rule``) and append it to this row.

        A saved row gets it with one ``UPDATE … SET rules = rules || [rule]``,
        then holds the rules the database has after it; ``save()`` need not
        be called.  An unsaved instance gets it in memory, written by its
        INSERT.  Returns the rule."""
        rule = self.follow_action_rule(field_name, operator, topic, using=using or self._state.db, **options)
        attname = self._follow_rules_attname()
        if self._state.adding or self.pk is None:
            setattr(self, attname, list(getattr(self, attname) or []) + [rule])
            return rule
        rules = self._write_rules("COALESCE({col}, '[]'::jsonb) || %s::jsonb", [json.dumps([rule])], using)
        setattr(self, attname, rules)
        self._follow_rules_loaded()
        return rule

    def clear_follow_action_rules(self, using: Optional[str] = None) -> None:
        """Remove every rule of this row (one UPDATE; in memory for an unsaved instance)."""
        attname = self._follow_rules_attname()
        if self._state.adding or self.pk is None:
            setattr(self, attname, [])
            return
        setattr(self, attname, self._write_rules("'[]'::jsonb", [], using))
        self._follow_rules_loaded()

    # -- saving
    def save(self, *args: Any, **kwargs: Any) -> None:
        """``Model.save()``, leaving the rules column out of the UPDATE unless
        this instance changed it since it was loaded or last saved (or
        ``update_fields`` names it).  New rows are inserted with every field."""
        kwargs.update(zip(_SAVE_ARGS, args))
        if (kwargs.get("update_fields") is None and not kwargs.get("force_insert")
                and not self._state.adding and self.pk is not None and not self.follow_rules_changed()):
            deferred = self.get_deferred_fields()
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields
                if not f.primary_key and f.attname not in deferred
                and f.attname != self._follow_rules_attname()]
        super().save(**kwargs)
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {self.follow_rules_field, self._follow_rules_attname()} & set(update_fields):
            self._follow_rules_loaded()

    @classmethod
    def from_db(cls, db: Any, field_names: Any, values: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        instance = super().from_db(db, field_names, values, **kwargs)
        instance._follow_rules_loaded()
        return instance

    def refresh_from_db(self, using: Optional[str] = None, fields: Any = None,  # type: ignore[override]
                        **kwargs: Any) -> None:
        super().refresh_from_db(using=using, fields=fields, **kwargs)
        if fields is None or {self.follow_rules_field, self._follow_rules_attname()} & set(fields):
            self._follow_rules_loaded()

    def follow_rules_changed(self) -> bool:
        """Whether this instance's rules differ from the value it loaded or last wrote."""
        attname = self._follow_rules_attname()
        if attname in self.get_deferred_fields():
            return False
        snapshot = self.__dict__.get("_follow_rules_snapshot", _UNSET)
        return snapshot is _UNSET or snapshot != getattr(self, attname)

    # -- internals
    def _follow_rules_attname(self) -> str:
        return self._meta.get_field(self.follow_rules_field).attname  # type: ignore[union-attr]

    def _follow_rules_loaded(self) -> None:
        attname = self._follow_rules_attname()
        if attname in self.get_deferred_fields():
            self.__dict__.pop("_follow_rules_snapshot", None)
        else:
            self.__dict__["_follow_rules_snapshot"] = copy.deepcopy(getattr(self, attname))

    def _write_rules(self, new_value_sql: str, params: list, using: Optional[str]) -> Any:
        meta = self._meta
        alias = using or self._state.db or router.db_for_write(type(self), instance=self)
        connection = connections[alias]
        qn = connection.ops.quote_name
        column = qn(meta.get_field(self.follow_rules_field).column)  # type: ignore[union-attr,arg-type]
        sql = (f"UPDATE {qn(meta.db_table)} SET {column} = {new_value_sql.format(col=column)}"
               f" WHERE {qn(meta.pk.column)} = %s RETURNING {column}::text")  # type: ignore[arg-type]
        with connection.cursor() as cur:
            cur.execute(sql, params + [meta.pk.get_db_prep_value(self.pk, connection)])
            row = cur.fetchone()
        if row is None:
            raise type(self).DoesNotExist(
                f"{meta.object_name} with pk {self.pk!r} does not exist in the database")
        return json.loads(row[0])


def _table_sql(model: Any) -> str:
    return follow.quote_table(model._meta.db_table)


class AttachFollowActions(Operation):
    """Migration operation: attach follow actions to a model's table.

    ``AttachFollowActions("order")`` runs ``celerysalt_attach_follow_actions``
    on the model's table with the column of its field ``rules_column``
    (default ``on_change_rules``; a column name that is not a field is used
    as it is).  Reversing it detaches the trigger.  It changes no model state.
    The migrating role needs ``celerysalt_publisher`` and must own the table.
    ``adopt_existing_rules=True`` attaches to a table whose rows already hold
    rules (review them first).
    """

    reversible = True
    reduces_to_sql = True

    def __init__(self, model_name: str, rules_column: str = follow.RULES_COLUMN,
                 adopt_existing_rules: bool = False):
        self.model_name = model_name
        self.rules_column = rules_column
        self.adopt_existing_rules = adopt_existing_rules

    def deconstruct(self) -> tuple:
        kwargs: dict = {}
        if self.rules_column != follow.RULES_COLUMN:
            kwargs["rules_column"] = self.rules_column
        if self.adopt_existing_rules:
            kwargs["adopt_existing_rules"] = True
        return (self.__class__.__qualname__, [self.model_name], kwargs)

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _column(self, model: Any) -> str:
        try:
            return model._meta.get_field(self.rules_column).column  # type: ignore[no-any-return]
        except FieldDoesNotExist:
            return self.rules_column

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.execute("SELECT celerysalt_attach_follow_actions(%s::regclass, %s, %s)",
                                  [_table_sql(model), self._column(model), self.adopt_existing_rules])

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.execute("SELECT celerysalt_detach_follow_actions(%s::regclass)", [_table_sql(model)])

    def describe(self) -> str:
        return f"Attach follow actions to {self.model_name} (rules in {self.rules_column})"

    @property
    def migration_name_fragment(self) -> str:
        return f"attach_follow_actions_{self.model_name.lower()}"
