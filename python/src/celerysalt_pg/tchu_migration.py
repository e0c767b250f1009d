"""Convert rules stored by TchuFollowActions into celerysalt rules, once.

``celerysalt-pg migrate-follow-rules --dsn DSN --table TBL`` (or
``migrate_rules()`` from a Django data migration) reads the rules column of
ONE table, unpickles the event each old rule carries, converts it into a
celerysalt rule (topic, payload, version), checks every rule with
``celerysalt_follow_action_check(rule, table)``, writes the rules back in one
transaction per batch, reports what it could not convert, and attaches the
trigger (``adopt_existing_rules => true``: it has just checked them).

Run it once, inside the project that defined the events (their classes must
import), and then never again.  Unpickling runs code: a pickle names any
importable callable and the unpickler calls it, so a rules column someone else
could write is a way to run code in this process.  That is why the command
reads only the table it is given (nothing else is unpickled), why celerysalt
itself never unpickles (rules are JSON), and why this module should not be
left wired into anything that runs regularly.

The shape of the rules it reads (the original helper is not available; this is
what ``add_follow_action_rule(field_name, operator, value, event_class,
event_authorization, payload, persist)`` stored, docs/follow-actions.md): a
JSON array of objects ``{"field_name", "operator", "value", "event": <base64
of pickle.dumps(event instance)>, "event_authorization", "payload",
"persist": "True" | "False" | "ForceFalse"}``.  The converted rule keeps
``field_name``, ``operator``, ``value`` (null included) and ``persist``; takes
``topic``, ``version`` and a payload from the event; the stored ``payload``
object, when there is one, is laid over the event's payload (its members
win: they were given when the rule was added).  ``event_authorization`` is
dropped (the trigger has no use for it) and counted in the report.  Rules
that already have a ``topic`` and no ``event`` are kept as they are (so the
command can be run again after fixing what it reported) and checked too.

Converters: a callable ``converter(event) -> {"topic": ..., "payload": {...},
"version": ...}`` (payload and version optional) or None.  The one given with
``--converter module:function`` is asked first; if it returns None, the
built-in one is tried, which understands celery-salt events: ``SaltEvent``
instances (topic and version from ``Meta``, payload
``event.data.model_dump(mode="json")``) and instances of classes decorated
with ``@celery_salt.event`` (``_celerysalt_topic``, ``_celerysalt_version``,
payload validated by ``_celerysalt_model``).  A rule nobody converts is left
unchanged and reported; then the command exits 1 and does not attach the
trigger (an old rule has no topic: the trigger would refuse every UPDATE of
its row).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import io
import json
import pickle
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

Converter = Callable[[Any], Optional[dict]]
OLD_MEMBERS = {"field_name", "operator", "value", "event", "event_authorization", "payload", "persist"}


# ---------------------------------------------------------------- unpickling

class _EventUnpickler(pickle._Unpickler):  # type: ignore[name-defined,misc]
    """pickle's own unpickler, except that BUILD looks ``__setstate__`` up on
    the class, not the instance.  A celery-salt 1.6.0 ``SaltEvent`` proxies
    unknown attributes to ``self.data`` (``__getattr__``), which does not
    exist yet while the instance is being restored: ``pickle.loads`` of a
    pickled SaltEvent raises RecursionError.  Looking special methods up on
    the type is what Python does everywhere else."""

    dispatch = dict(pickle._Unpickler.dispatch)  # type: ignore[attr-defined]

    def load_build(self) -> None:
        stack: list = self.stack  # type: ignore[attr-defined]
        state = stack.pop()
        inst = stack[-1]
        setstate = getattr(type(inst), "__setstate__", None)
        if setstate is not None:
            setstate(inst, state)
            return
        slotstate = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slotstate = state
        if state:
            inst.__dict__.update(state)
        if slotstate:
            for k, v in slotstate.items():
                setattr(inst, k, v)

    dispatch[pickle.BUILD[0]] = load_build  # type: ignore[assignment]


def unpickle_event(data: str) -> Any:
    """The object pickled and base64-encoded in ``data``.  Runs code named by
    the pickle: use it only on data this project wrote."""
    return _EventUnpickler(io.BytesIO(base64.b64decode(data, validate=True))).load()


# ---------------------------------------------------------------- converters

def celery_salt_converter(event: Any) -> Optional[dict]:
    """The built-in converter: celery-salt event instances, None otherwise."""
    cls = type(event)
    meta = getattr(cls, "Meta", None)
    data = event.__dict__.get("data") if hasattr(event, "__dict__") else None
    if meta is not None and isinstance(getattr(meta, "topic", None), str) and data is not None \
            and hasattr(data, "model_dump"):
        return {"topic": meta.topic, "version": getattr(meta, "version", None),
                "payload": data.model_dump(mode="json")}
    topic = cls.__dict__.get("_celerysalt_topic")      # @celery_salt.event classes
    model = cls.__dict__.get("_celerysalt_model")
    if isinstance(topic, str) and model is not None:
        values = {name: getattr(event, name) for name in model.model_fields if hasattr(event, name)}
        return {"topic": topic, "version": cls.__dict__.get("_celerysalt_version"),
                "payload": model(**values).model_dump(mode="json")}
    return None


def load_converter(spec: str) -> Converter:
    """``module:function`` -> the function."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"converter {spec!r} is not of the form module:function")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"converter {spec!r} is not callable")
    return obj  # type: ignore[no-any-return]


def _literal_safe(value: Any) -> Any:
    """Event data as a payload template that means itself: an object that
    would read as a placeholder (one member named ``$…``) is wrapped in
    ``{"$literal": …}``."""
    if isinstance(value, dict):
        if len(value) == 1 and next(iter(value)).startswith("$"):
            return {"$literal": value}
        return {k: _literal_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal_safe(v) for v in value]
    return value


class ConversionError(Exception):
    """A rule that could not be converted; the message says why."""


def convert_rule(old: Any, converter: Optional[Converter] = None) -> tuple[dict, list[str]]:
    """One stored rule -> (celerysalt rule, notes).  Raises ConversionError."""
    if not isinstance(old, dict):
        raise ConversionError(f"the rule is a JSON {type(old).__name__}, not an object")
    if "event" not in old and "topic" in old:
        return old, []                                     # already a celerysalt rule
    unknown = set(old) - OLD_MEMBERS
    if unknown:
        raise ConversionError(f"unknown members {sorted(unknown)}")
    for member in ("field_name", "operator", "event"):
        if member not in old:
            raise ConversionError(f"no {member!r}")
    if not isinstance(old["event"], str):
        raise ConversionError("'event' is not a base64 string")
    try:
        event = unpickle_event(old["event"])
    except Exception as exc:  # anything the pickle's code raises
        raise ConversionError(f"could not unpickle the event: {type(exc).__name__}: {exc}") from None
    what = f"{type(event).__module__}.{type(event).__qualname__}"
    converted = None
    for conv in ([converter] if converter else []) + [celery_salt_converter]:
        try:
            converted = conv(event)
        except Exception as exc:
            raise ConversionError(f"converter {getattr(conv, '__name__', conv)!r} failed on {what}: "
                                  f"{type(exc).__name__}: {exc}") from None
        if converted is not None:
            break
    if converted is None:
        raise ConversionError(f"no converter understands {what}"
                              + ("" if converter else " (give one with --converter module:function)"))
    if not isinstance(converted, dict) or not isinstance(converted.get("topic"), str) \
            or set(converted) - {"topic", "payload", "version"}:
        raise ConversionError(f"the converter returned {converted!r} for {what}: expected a dict with"
                              " 'topic' and optionally 'payload' and 'version'")
    payload = converted.get("payload")
    if payload is not None and not isinstance(payload, dict):
        raise ConversionError(f"the converter's payload for {what} is not a dict")
    payload = _literal_safe(payload) if payload is not None else None
    stored = old.get("payload")
    if stored not in (None, {}):
        if not isinstance(stored, dict):
            raise ConversionError("the stored 'payload' is not an object")
        payload = dict(payload or {}, **_literal_safe(stored))
    new: dict = {"field_name": old["field_name"], "operator": old["operator"], "topic": converted["topic"]}
    if "value" in old:
        new["value"] = old["value"]
    if payload is not None:
        new["payload"] = payload
    if converted.get("version") is not None:
        new["version"] = converted["version"]
    new["persist"] = old.get("persist", "True")
    notes = ["event_authorization dropped"] if old.get("event_authorization") is not None else []
    return new, notes


# ---------------------------------------------------------------- the table

@dataclass
class Problem:
    row_key: Any
    rule_index: Optional[int]       # None: the row's rules column as a whole
    reason: str

    def __str__(self) -> str:
        where = "" if self.rule_index is None else f" rule {self.rule_index}"
        return f"row {json.dumps(self.row_key, sort_keys=True)}{where}: {self.reason}"


@dataclass
class Report:
    rows_read: int = 0
    rows_changed: int = 0
    rules_converted: int = 0
    rules_kept: int = 0
    notes: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    attached: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        notes = "".join(f", {n}: {c}" for n, c in sorted(self.notes.items()))
        return (f"{self.rows_read} row(s) read, {self.rows_changed} changed, {self.rules_converted} rule(s)"
                f" converted, {self.rules_kept} already celerysalt rules, {len(self.problems)} left"
                f"{notes}; trigger {'attached' if self.attached else 'not attached'}")


def _key_columns(conn: Any, table: str) -> list[str]:
    with conn.cursor() as cur:
        cur.execute("SELECT a.attname::text FROM pg_index i"
                    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
                    " WHERE i.indrelid = %s::regclass AND i.indisprimary"
                    " ORDER BY array_position(i.indkey::int2[], a.attnum)", [table])
        return [r[0] for r in cur.fetchall()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def migrate_rules(conn: Any, table: str, column: str = "on_change_rules", *,
                  converter: Optional[Converter] = None, batch_size: int = 500, dry_run: bool = False,
                  attach: bool = True) -> Report:
    """Convert the rules of ``table`` (SQL syntax, as for regclass) in place.

    ``conn`` is a psycopg 3 connection (Django's ``schema_editor.connection
    .connection`` in a data migration, with Django's psycopg 3 backend).
    Each batch runs in ``conn.transaction()``: a transaction of its own on an
    autocommit connection; otherwise a savepoint in the caller's transaction,
    which the caller commits (a Django migration does).  With
    ``dry_run`` every batch is rolled back and nothing is attached.  The
    trigger is attached (adopting the checked rules) only when nothing is
    left.  Reads nothing but the key and rules columns of ``table``."""
    import psycopg

    report = Report()
    if not conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        conn.execute("SELECT 1")  # begin the caller's transaction: batches become savepoints in it
    keys = _key_columns(conn, table)
    col = _quote(column)
    if keys:
        key_sql = ", ".join(_quote(k) for k in keys)
        key_json = "jsonb_build_object(" + ", ".join(f"%s::text, {_quote(k)}" for k in keys) + ")::text"
        key_params: list = list(keys)
    else:                         # no primary key: walk by ctid, report it
        key_sql, key_json, key_params = "ctid", "jsonb_build_object('ctid', ctid::text)::text", []
    last: Optional[tuple] = None
    while True:
        with conn.transaction() as tx:
            with conn.cursor() as cur:
                where = "" if last is None else \
                    f" AND ({key_sql}) > ({', '.join(['%s'] * len(last))})"
                cur.execute(
                    f"SELECT ctid::text, {key_json}, {col}::text, {key_sql} FROM {table}"
                    f" WHERE {col} <> ALL (ARRAY['[]', '{{}}', 'null']::jsonb[]){where}"
                    f" ORDER BY {key_sql} LIMIT %s FOR UPDATE",
                    key_params + list(last or ()) + [batch_size])
                rows = cur.fetchall()
                for ctid, row_key_text, rules_text, *key_values in rows:
                    last = tuple(key_values) if keys else (ctid,)
                    report.rows_read += 1
                    row_key = json.loads(row_key_text)
                    rules = json.loads(rules_text)
                    if not isinstance(rules, list):
                        report.problems.append(Problem(row_key, None, "the rules column is not a JSON array"))
                        continue
                    new_rules = []
                    for index, old in enumerate(rules):
                        try:
                            new, notes = convert_rule(old, converter)
                            try:
                                with conn.transaction():
                                    cur.execute("SELECT celerysalt_follow_action_check(%s::jsonb, %s::regclass)",
                                                [json.dumps(new), table])
                            except psycopg.Error as exc:
                                raise ConversionError(f"celerysalt_follow_action_check refused {json.dumps(new)}: "
                                                      f"{exc.sqlstate} {str(exc).splitlines()[0]}") from None
                        except ConversionError as exc:
                            report.problems.append(Problem(row_key, index, str(exc)))
                            new_rules.append(old)
                            continue
                        if new is old:
                            report.rules_kept += 1
                        else:
                            report.rules_converted += 1
                        for note in notes:
                            report.notes[note] = report.notes.get(note, 0) + 1
                        new_rules.append(new)
                    if new_rules != rules:
                        cur.execute(f"UPDATE {table} SET {col} = %s::jsonb WHERE ctid = %s::tid",
                                    [json.dumps(new_rules), ctid])
                        report.rows_changed += 1
            if dry_run:
                raise psycopg.Rollback(tx)
        if len(rows) < batch_size:
            break
    if attach and not dry_run and report.ok:
        with conn.transaction():
            with conn.cursor() as cur:
                cur.execute("SELECT celerysalt_attach_follow_actions(%s::regclass, %s, adopt_existing_rules => true)",
                            [table, column])
        report.attached = True
    return report


# ---------------------------------------------------------------- command

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", required=True, help="libpq connection string or URL")
    parser.add_argument("--table", required=True, help="the table, in SQL syntax (orders, shop.\"Order\")")
    parser.add_argument("--column", default="on_change_rules", help="the rules column (default on_change_rules)")
    parser.add_argument("--converter", metavar="MODULE:FUNCTION",
                        help="converter(event) -> {'topic', 'payload', 'version'} or None, asked first")
    parser.add_argument("--batch-size", type=int, default=500, help="rows per transaction (default 500)")
    parser.add_argument("--dry-run", action="store_true", help="convert and check, write nothing, attach nothing")
    parser.epilog = ("Unpickling runs code: run this once, in the project that defined the events, "
                     "on a table only this project writes; it reads nothing but that table.")


def run(args: argparse.Namespace) -> int:
    import psycopg

    if args.batch_size < 1:
        print("migrate-follow-rules: --batch-size must be at least 1", file=sys.stderr)
        return 2
    if "" not in sys.path:
        sys.path.insert(0, "")    # the project's modules, as `python -m` would see them
    try:
        converter = load_converter(args.converter) if args.converter else None
    except (ImportError, AttributeError, ValueError) as exc:
        print(f"migrate-follow-rules: {exc}", file=sys.stderr)
        return 2
    with psycopg.connect(args.dsn, autocommit=True) as conn:
        try:
            report = migrate_rules(conn, args.table, args.column, converter=converter,
                                   batch_size=args.batch_size, dry_run=args.dry_run)
        except psycopg.Error as exc:
            print(f"migrate-follow-rules: {exc.sqlstate}: {exc}", file=sys.stderr)
            return 2
    for problem in report.problems:
        print(f"not converted: {problem}")
    print(("dry run: " if args.dry_run else "") + report.summary())
    return 0 if report.ok else 1
