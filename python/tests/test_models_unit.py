"""celerysalt-pg models without a database: arguments, module names, output."""

import argparse
import importlib.util
import sys
from typing import Any, List, Optional, Sequence, Tuple

import pytest

from celerysalt_pg import models

SOURCE = 'TOPIC = {topic!r}\nVERSION = {version!r}\n'


def parse(argv: List[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    models.add_arguments(parser)
    return parser.parse_args(argv)


def test_each_version_belongs_to_the_topic_before_it():
    args = parse(["--dsn", "x", "--topic", "a", "--version", "v2", "--topic", "b"])
    assert args.topics == [["a", "v2"], ["b", "latest"]] and not args.all


@pytest.mark.parametrize("argv", [
    ["--dsn", "x", "--version", "v1", "--topic", "a"],          # no topic before it
    ["--dsn", "x", "--topic", "a", "--version", "v1", "--version", "v2"],
    ["--dsn", "x", "--all", "--topic", "a"],
    ["--dsn", "x"],
])
def test_bad_arguments(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2


def test_module_names_are_identifiers_and_distinct():
    names = models.module_names([("order.placed", "latest"), ("order-placed", "latest"),
                                 ("order.placed", "v2"), ("1st", "latest"), ("class", "latest"),
                                 ("_x", "latest")])
    assert list(names.values()) == ["order_placed", "order_placed_2", "order_placed_v2", "m_1st",
                                    "m_class", "m__x"]
    assert all(n.isidentifier() for n in names.values())


class FakeConn:
    def __enter__(self) -> "FakeConn":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


@pytest.fixture
def fake_db(monkeypatch):
    """generate() answers from the arguments: no database."""
    import psycopg

    def generate(conn: Any, wanted: Optional[Sequence[Tuple[str, str]]]):
        wanted = wanted if wanted is not None else [("t.one", "latest"), ("t.two", "latest")]
        return [(t, v, SOURCE.format(topic=t, version=v)) for t, v in wanted]

    monkeypatch.setattr(models, "generate", generate)
    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: FakeConn())


def test_one_topic_to_a_file_or_stdout(fake_db, tmp_path, capsys):
    assert models.run(parse(["--dsn", "x", "--topic", "t.one"])) == 0
    assert capsys.readouterr().out == SOURCE.format(topic="t.one", version="latest")
    out = tmp_path / "m.py"
    assert models.run(parse(["--dsn", "x", "--topic", "t.one", "--version", "v3", "--out", str(out)])) == 0
    assert out.read_text() == SOURCE.format(topic="t.one", version="v3")


def test_several_topics_make_a_package(fake_db, tmp_path, capsys):
    assert models.run(parse(["--dsn", "x", "--topic", "t.one", "--topic", "t.two"])) == 2
    assert "--out DIRECTORY" in capsys.readouterr().err
    out = tmp_path / "pkg"
    assert models.run(parse(["--dsn", "x", "--all", "--out", str(out)])) == 0
    spec = importlib.util.spec_from_file_location("pkg_index", out / "__init__.py")
    index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(index)
    assert index.MODULES == {("t.one", "latest"): "t_one", ("t.two", "latest"): "t_two"}
    assert (out / "t_two.py").read_text() == SOURCE.format(topic="t.two", version="latest")


def test_database_errors_are_reported(monkeypatch, capsys):
    import psycopg

    def fail(*a: Any, **k: Any) -> None:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(psycopg, "connect", fail)
    assert models.run(parse(["--dsn", "x", "--topic", "t"])) == 1
    assert "models: connection refused" in capsys.readouterr().err


def test_registered_as_a_subcommand():
    from celerysalt_pg.cli import COMMANDS

    assert COMMANDS["models"][0] == "celerysalt_pg.models"
    assert sys.modules  # imported above
