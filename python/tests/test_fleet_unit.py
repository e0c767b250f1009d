"""celerysalt_pg.fleet and celerysalt_pg.tchu without a broker: which names
the no-op alias takes, what it does, and what bind_tchu_queue reads from
tchu-tchu's registry.  The real workers: test/integration/test_python_fleet.py."""

import json
import subprocess
import sys
import textwrap

import pytest
from celery import Celery

from celerysalt_pg.fleet import KNOWN_DISPATCHERS, ignore_foreign_dispatchers

SALT, TCHU = KNOWN_DISPATCHERS


def _app(name):
    app = Celery(name, broker="memory://", backend="cache+memory://", set_as_current=False)
    app.conf.task_always_eager = True
    return app


def _in_fresh_process(body):
    """Run body (Python) in a new interpreter and return what it printed as JSON.

    The libraries' dispatchers are shared tasks (every app of a process gets
    them at finalize), so each service is set up in a process of its own, as
    in a worker."""
    script = textwrap.dedent("""
        import json
        from celery import Celery
        from celerysalt_pg.fleet import ignore_foreign_dispatchers, own_dispatchers
        def app_(name):
            return Celery(name, broker="memory://", backend="cache+memory://", set_as_current=False)
    """) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_celery_salt_service_ignores_the_tchu_copy():
    got = _in_fresh_process("""
        from celery_salt.django.celery import setup_salt_queue
        app = app_("svc")
        setup_salt_queue(app, queue_name="svc")
        own, ignored = own_dispatchers(app), ignore_foreign_dispatchers(app)
        alias = app.tasks["tchu_tchu.dispatch_event"]
        print(json.dumps({"own": own, "ignored": ignored, "ignore_result": alias.ignore_result,
                          "typed": alias.typed, "returns": alias.run('{"n": 1}', routing_key="a.b"),
                          "real": app.tasks["celery_salt.dispatch_event"].__name__}))
    """)
    assert got == {"own": [SALT], "ignored": [TCHU], "ignore_result": True, "typed": False, "returns": None,
                   "real": "dispatch_event"}


def test_tchu_service_ignores_the_celery_salt_copy():
    got = _in_fresh_process("""
        from tchu_tchu.django.celery import setup_celery_queue
        app = app_("svc")
        setup_celery_queue(app, queue_name="svc", subscriber_modules=[])
        ignored = ignore_foreign_dispatchers(app)
        print(json.dumps({"ignored": ignored,
                          "alias": app.tasks["celery_salt.dispatch_event"].__name__,
                          "ignore_result": app.tasks["celery_salt.dispatch_event"].ignore_result,
                          "real": app.tasks["tchu_tchu.dispatch_event"].__name__}))
    """)
    assert got == {"ignored": [SALT], "alias": "ignore_celery_salt_dispatch_event", "ignore_result": True,
                   "real": "dispatch_event"}


def test_alias_is_not_shared_with_other_apps():
    got = _in_fresh_process("""
        app, other = app_("a"), app_("b")
        ignore_foreign_dispatchers(app, names=["x.dispatch_event"])
        print(json.dumps(["x.dispatch_event" in app.tasks, "x.dispatch_event" in other.tasks]))
    """)
    assert got == [True, False]


def test_without_a_routed_dispatcher_names_are_required():
    app = _app("fleet_unit_manual")
    with pytest.raises(ValueError, match="cannot tell the service's own dispatcher"):
        ignore_foreign_dispatchers(app)
    assert ignore_foreign_dispatchers(app, names=["custom.dispatch_event", "custom.dispatch_event"]) == \
        ["custom.dispatch_event"]
    assert app.tasks["custom.dispatch_event"].ignore_result is True


def test_own_dispatcher_cannot_be_ignored():
    from celery_salt.django.celery import setup_salt_queue

    app = _app("fleet_unit_own")
    setup_salt_queue(app, queue_name="fleet_unit_own")
    with pytest.raises(ValueError, match="own dispatcher"):
        ignore_foreign_dispatchers(app, names=[SALT])


def test_subscriptions_lists_topics_and_patterns_once():
    from tchu_tchu import subscribe

    from celerysalt_pg.tchu import subscriptions

    @subscribe("fleet.unit.topic")
    def on_topic(data):
        return None

    @subscribe("fleet.unit.*")
    def on_pattern(data):
        return None

    mine = [p for p in subscriptions() if p[0].startswith("fleet.unit.")]
    assert mine == [("fleet.unit.*", f"{__name__}.on_pattern"), ("fleet.unit.topic", f"{__name__}.on_topic")]


def test_bind_tchu_queue_touches_nothing_before_the_worker_starts():
    from celery.signals import celeryd_after_setup, worker_ready

    from celerysalt_pg.tchu import bind_tchu_queue

    app = _app("fleet_unit_bind")
    before = (len(celeryd_after_setup.receivers), len(worker_ready.receivers))
    # an unreachable DSN and broker: nothing connects at setup time
    bind_tchu_queue(app, "fleet_unit_bind", dsn="host=/nonexistent dbname=none")
    assert (len(celeryd_after_setup.receivers), len(worker_ready.receivers)) == (before[0] + 1, before[1] + 1)
