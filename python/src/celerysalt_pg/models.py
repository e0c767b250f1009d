"""Write the pydantic models of registered schemas as Python modules.

``celerysalt-pg models --dsn DSN --topic T [--version V] [--topic T2 ...]
[--out FILE]`` writes the module ``celerysalt_pydantic_model(T, V)`` returns
(docs/registry.md, "Generated code"): the event model ``Model`` and, for an
RPC topic with a registered response or error schema, ``ResponseModel`` and
``ErrorModel``.  One topic goes to ``--out`` (a file) or to standard output;
several topics (or ``--all``: every registered topic, latest version) go to
``--out`` as a directory: a package with one module per topic, named after it
(``order.placed`` -> ``order_placed.py``; ``order_placed_v1.py`` when a
version was asked for), and an ``__init__.py`` whose ``MODULES`` maps each
(topic, version asked) to its module.  Generating needs only
``celerysalt_reader``.
"""

from __future__ import annotations

import argparse
import json
import keyword
import os
import re
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["add_arguments", "generate", "module_names", "run"]


class _TopicAction(argparse.Action):
    """--topic T appends (T, "latest"); --version V sets the last one's version."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: Optional[str] = None) -> None:
        topics: List[List[str]] = list(getattr(namespace, "topics", None) or [])
        if option_string == "--topic":
            topics.append([str(values), "latest"])
        else:
            if not topics or topics[-1][1] != "latest":
                parser.error("--version must follow the --topic it is for (once)")
            topics[-1][1] = str(values)
        namespace.topics = topics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", required=True, help="libpq connection string or URL")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--topic", action=_TopicAction, dest="topics", metavar="TOPIC",
                       help="a registered topic (repeatable)")
    which.add_argument("--all", action="store_true", help="every registered topic, latest version")
    parser.add_argument("--version", action=_TopicAction, dest="topics", metavar="VERSION",
                        help="the version of the preceding --topic (default latest)")
    parser.add_argument("--out", metavar="PATH",
                        help="the file to write (one topic; default standard output), or the "
                             "directory of a package with one module per topic (several topics, --all)")


def module_names(wanted: Sequence[Tuple[str, str]]) -> Dict[Tuple[str, str], str]:
    """A distinct Python module name per (topic, version asked)."""
    names: Dict[Tuple[str, str], str] = {}
    used = set()
    for topic, version in wanted:
        base = re.sub(r"[^A-Za-z0-9_]", "_", topic if version == "latest" else f"{topic}_{version}")
        if not base or base[0].isdigit() or base.startswith("_") or keyword.iskeyword(base):
            base = "m_" + base
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names[(topic, version)] = name
    return names


def generate(conn: Any, wanted: Optional[Sequence[Tuple[str, str]]]) -> List[Tuple[str, str, str]]:
    """(topic, version asked, module source) for each of wanted, or for every
    registered topic (latest) when wanted is None.  conn: a psycopg connection."""
    from psycopg import sql

    row = conn.execute("SELECT n.nspname FROM pg_catalog.pg_extension e"
                       "  JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace"
                       " WHERE e.extname = 'celerysalt'").fetchone()
    if row is None:
        raise LookupError("the celerysalt extension is not installed in this database")
    ext = sql.Identifier(row[0])
    if wanted is None:
        wanted = [(r[0], "latest") for r in conn.execute(
            sql.SQL("SELECT topic FROM {}.celerysalt_catalog ORDER BY topic").format(ext))]
    out = []
    for topic, version in wanted:
        source = conn.execute(sql.SQL("SELECT {}.celerysalt_pydantic_model(%s, %s)").format(ext),
                              (topic, version)).fetchone()[0]
        out.append((topic, version, source))
    return out


def _write(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def run(args: argparse.Namespace) -> int:
    import psycopg

    wanted = None if args.all else [(t, v) for t, v in args.topics]
    try:
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            modules = generate(conn, wanted)
    except (psycopg.Error, LookupError) as exc:
        print(f"models: {str(exc).strip()}", file=sys.stderr)
        return 1
    if not args.all and len(modules) == 1:
        if args.out:
            _write(args.out, modules[0][2])
        else:
            sys.stdout.write(modules[0][2])
        return 0
    if not args.out:
        print("models: several topics need --out DIRECTORY (one module per topic)", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    names = module_names([(t, v) for t, v, _ in modules])
    for topic, version, source in modules:
        _write(os.path.join(args.out, names[(topic, version)] + ".py"), source)
    # json.dumps of a str is a valid Python literal
    index = "".join(f"    ({json.dumps(t)}, {json.dumps(v)}): {json.dumps(names[(t, v)])},\n"
                    for t, v, _ in modules)
    _write(os.path.join(args.out, "__init__.py"),
           "# Generated by celerysalt-pg models: one module per topic. Do not edit.\n"
           f"MODULES = {{\n{index}}}\n")
    print(f"models: wrote {len(modules)} module(s) to {args.out}", file=sys.stderr)
    return 0
