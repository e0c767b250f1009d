"""The ``celerysalt-pg`` command: one subcommand per module that provides one.

Each subcommand lives in its own module, which defines ``add_arguments(parser)``
and ``run(args) -> int``; this file only dispatches.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict = {
    "migrate-follow-rules": ("celerysalt_pg.tchu_migration",
                             "convert the rules TchuFollowActions pickled into celerysalt rules, once"),
    "models": ("celerysalt_pg.models",
               "write the pydantic models of registered schemas (celerysalt_pydantic_model) as Python modules"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="celerysalt-pg", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        modules[name] = module
        module.add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return int(modules[args.command].run(args))


if __name__ == "__main__":
    sys.exit(main())
