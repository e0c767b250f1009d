"""celerysalt_pg: the Python side of the celerysalt PostgreSQL extension.

Modules, each importable on its own (an integration imports its framework
only when used):

- ``celerysalt_pg.cli``: the ``celerysalt-pg`` command (also ``python -m celerysalt_pg``).
- ``celerysalt_pg.registry``: ``PostgresSchemaRegistry``, celery-salt's schema registry in PostgreSQL
  (needs the ``celery-salt`` extra; docs/python.md).
"""

__version__ = "0.2.0"
