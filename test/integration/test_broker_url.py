"""celerysalt.broker_url is read as Celery reads broker_url: every spelling
below is parsed by kombu (the installed version, as Celery's
app.connection_for_write() hands it over: kombu.Connection, failover to the
next node with maybe_switch_next(), py-amqp's defaults filled in as its
establish_connection() does) and by the extension
(celerysalt_broker_nodes), and the two readings must agree node by node:
host, port, virtual host, user, and whether a password was given.

Spellings both refuse, and those kombu accepts but celerysalt refuses on
purpose (docs/configuration.md says why), are listed too.  The URLs carry no
real password: the extension reports only whether one was given.
"""
from __future__ import annotations

import psycopg
import pytest
from kombu import Connection
from kombu.transport import pyamqp
from kombu.utils.url import url_to_parts

# Celery's documentation (configuration, first steps, RabbitMQ page, failover)
# and the spellings around them.
SAME = [
    "amqp://",                                              # Celery's default broker_url
    "amqp://guest:guest@localhost:5672//",                  # the example configuration
    "pyamqp://guest@localhost//",                           # First steps with Celery
    "amqp://myuser:mypassword@localhost:5672/myvhost",      # Using RabbitMQ
    "amqp://guest:guest@127.0.0.1:5672/%2F",                # celerysalt's old spelling
    "amqp://localhost",
    "amqp://localhost/",
    "amqp://rabbit.example.com:5673",
    "amqp://h/a/b",
    "amqp://h/%2Fx",
    "AMQP://User:Pass@HOST.example.com:05672/Vh",
    "amqp://us%40er:p%3Aw%2Fd%3B%23%3F%25%5B%5D@h:5672/v%20h",
    "amqp://u:p:q@h//",
    "amqp://u:p@x@h//",
    "amqp://:pw@h//",
    "amqp://u:@h//",
    "amqp://u@h//",
    "amqp://[::1]:5673//",
    "amqp://[::1]//",
    "amqp://[fe80::1%25eth0]:5673//",
    "amqp://h:0//",
    "amqp://h//#fragment",
    "amqp://h?",
    "amqp://%68ost//",
    "amqp://é@h//",
    # failover: kombu's ";" form, Celery's broker_url docs
    "amqp://guest:guest@a:5673//;amqp://guest:guest@b:5674//",
    "amqp://u:p@a:5673/vh;amqp://b",
    "amqp://a;pyamqp://b:1234/x;amqp://c",
    "amqp://a:5673//;amqp://b/;amqp://c//",
    "amqp://u:p@a//;amqp://v:q@b:5673/%2F;amqp://w@c:5674/prod",
]

BOTH_REFUSE = [
    "amqp://h:abc//",            # port not a number
    "amqp://h:70000//",          # port out of range
    "amqp://h:5672:1//",
    "amqp://u:p[x@h//",          # unbalanced bracket (in the password)
    "amqp://u:p]x[@h//",         # brackets: the host must then be [IPv6]
    "amqp://x[::1]//",
    "amqp://u:pa;ss@h//",        # ";" splits nodes: the first is amqp://u:pa
    "amqp://u:pa/ss@h//",        # "/" ends the authority: port "pa"
    "amqp://u:pa#ss@h//",        # "#" too
]

# kombu takes these; celerysalt refuses them, saying why (docs/configuration.md).
ONLY_KOMBU = {
    "amqp://h//?heartbeat=10": "query parameters",
    "redis://h": "must start with amqp://",
    "amqp://a;b": "Node 2 of the broker URL must start with amqp://",
    "amqp://a//;": "Node 2 of the broker URL is empty",
    "amqp://u:p%00@h//": "encoded NUL byte",
    "amqp://u:p%ff@h//": "not UTF-8",
}


def kombu_nodes(url: str) -> list[tuple]:
    """(host, port, vhost, user, password given) of each node, in the order
    kombu tries them, with py-amqp's defaults and its localhost mapping."""
    conn = Connection(url)
    nodes = []
    for i in range(len(conn.alt) or 1):
        if i:
            conn.maybe_switch_next()
        # what pyamqp.Transport.establish_connection does before connecting
        for name, default in pyamqp.Transport(client=conn).default_connection_params.items():
            if not getattr(conn, name, None):
                setattr(conn, name, default)
        host = "127.0.0.1" if conn.hostname == "localhost" else conn.hostname
        text = conn.alt[i] if conn.alt else url
        nodes.append((host, conn.port, conn.virtual_host, conn.userid,
                      url_to_parts(text).password is not None))
    return nodes


def extension_nodes(pg, url: str) -> list[tuple]:
    return [tuple(r) for r in pg.execute(
        "SELECT hostname, port, virtual_host, userid, has_password"
        " FROM celerysalt_broker_nodes(%s) ORDER BY node", (url,))]


def extension_error(pg, url: str) -> str:
    with pytest.raises(psycopg.Error) as err:
        pg.execute("SELECT * FROM celerysalt_broker_nodes(%s)", (url,))
    assert err.value.sqlstate == "22023", err.value
    return err.value.diag.message_detail or ""


@pytest.mark.parametrize("url", SAME)
def test_read_as_kombu_reads_it(pg, url):
    assert extension_nodes(pg, url) == kombu_nodes(url)


def test_librabbitmq_scheme_reads_as_amqp(pg):
    # kombu's librabbitmq transport needs the librabbitmq module (not installed);
    # its URL reading and defaults are py-amqp's
    url = "librabbitmq://guest:guest@localhost:5672//;librabbitmq://h2"
    assert extension_nodes(pg, url) == kombu_nodes(url.replace("librabbitmq://", "amqp://"))
    assert [r[0] for r in pg.execute("SELECT scheme FROM celerysalt_broker_nodes(%s)", (url,))] == \
        ["librabbitmq", "librabbitmq"]


@pytest.mark.parametrize("url", BOTH_REFUSE)
def test_refused_by_both(pg, url):
    with pytest.raises(ValueError):
        kombu_nodes(url)
    detail = extension_error(pg, url)
    assert url not in detail and "pass" not in detail.replace("password", "")


@pytest.mark.parametrize("url", sorted(ONLY_KOMBU))
def test_refused_on_purpose(pg, url):
    kombu_nodes(url)  # kombu takes it
    assert ONLY_KOMBU[url] in extension_error(pg, url)


def test_every_node_password_masked(pg):
    url = "amqp://u:FirstPw1@a:5673/vh;amqp://v:Second%3BPw2@b;pyamqp://w:@c//"
    rows = pg.execute("SELECT url, has_password FROM celerysalt_broker_nodes(%s) ORDER BY node", (url,))
    assert rows == [("amqp://u:***@a:5673/vh", True), ("amqp://v:***@b", True), ("pyamqp://w:***@c//", False)]
