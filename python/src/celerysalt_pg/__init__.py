"""celerysalt_pg: the Python side of the celerysalt PostgreSQL extension.

Modules, each importable on its own (an integration imports its framework
only when used):

- ``celerysalt_pg.cli``: the ``celerysalt-pg`` command (also ``python -m celerysalt_pg``).
"""

__version__ = "0.2.0"
