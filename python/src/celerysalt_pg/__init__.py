"""celerysalt_pg: the Python side of the celerysalt PostgreSQL extension.

Modules, each importable on its own (an integration imports its framework
only when used):

- ``celerysalt_pg.cli``: the ``celerysalt-pg`` command (also ``python -m celerysalt_pg``).
- ``celerysalt_pg.follow``: follow-action rules, attach and detach over a
  psycopg (or any DB-API) connection.
- ``celerysalt_pg.django``: ``FollowActionsMixin`` for models and the
  ``AttachFollowActions`` migration operation.
- ``celerysalt_pg.sqlalchemy``: the same for SQLAlchemy 2 (and Alembic).
- ``celerysalt_pg.tchu_migration``: the ``migrate-follow-rules`` subcommand,
  converting rules stored by TchuFollowActions (pickled events), once.
- ``celerysalt_pg.registry``: ``PostgresSchemaRegistry``, celery-salt's schema registry in PostgreSQL
  (needs the ``celery-salt`` extra; docs/python.md).
- ``celerysalt_pg.tchu``: ``bind_tchu_queue``, the queue bindings tchu-tchu 3.x's
  ``setup_celery_queue`` never makes, and the handlers recorded in PostgreSQL.
- ``celerysalt_pg.fleet``: ``ignore_foreign_dispatchers``, a mixed celery-salt /
  tchu-tchu fleet without "Received unregistered task".
- ``celerysalt_pg.tracing``: ``set_traceparent``, the current OpenTelemetry span's
  trace context for what a transaction publishes (docs/tracing.md).
"""

__version__ = "0.2.0"
