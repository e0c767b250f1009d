"""celerysalt_pg.sqlalchemy with SQLAlchemy 2 and psycopg 3 (issue 14, item 3).

A migration role creates the table with ``metadata.create_all`` and attaches
follow actions through ``attach_ddl`` (an ``after_create`` listener);
``detach``/``attach`` run as Alembic would.  The application connects as a
plain LOGIN role in celerysalt_publisher that owns nothing and holds
SELECT/INSERT/UPDATE/DELETE on the table: it adds rules with
``add_follow_action_rule`` (one ``||`` UPDATE, committed state set, so the unit
of work never writes a stale rules value back), changes rows through the unit
of work and with a bulk ``update()``, and every event is confirmed by the
broker and reaches a queue bound to its topic, once.
"""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("sqlalchemy")

from sqlalchemy import create_engine, event, select, text, update  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402
from sqlalchemy.exc import DBAPIError  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402

from celerysalt_pg import sqlalchemy as cs  # noqa: E402


def engine_for(pg, user: str):
    return create_engine(f"postgresql+psycopg://{user}@/{pg.dbname}?host={pg.sock_dir}&port={pg.port}")


def test_sqlalchemy_helpers_as_application_role(pg, amqp, run_id):
    migrator, app = f"csit_sa_migrator_{run_id}", f"csit_sa_app_{run_id}"
    table = f"csit_sa_py_orders_{run_id}"
    topics = {n: f"csit.{run_id}.sapy.{n}" for n in ("paid", "shipped")}
    per_event = len([t for t in pg.scalar("SHOW celerysalt.dispatcher_tasks").split(",") if t.strip()])
    queue = amqp.declare_queue(f"csit_sapy_{run_id}_{uuid.uuid4().hex[:6]}", topics.values())
    pg.execute(f"CREATE ROLE {migrator} LOGIN IN ROLE celerysalt_publisher")
    pg.execute(f"CREATE ROLE {app} LOGIN IN ROLE celerysalt_publisher")
    pg.execute(f"GRANT CREATE ON SCHEMA public TO {migrator}, {app}")

    class Base(DeclarativeBase):
        pass

    class Order(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str]
        on_change_rules: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'"))

    event.listen(Order.__table__, "after_create", cs.attach_ddl(Order.__table__))
    migrations, application = engine_for(pg, migrator), engine_for(pg, app)
    try:
        Base.metadata.create_all(migrations)
        is_attached = f"SELECT count(*) FROM celerysalt_follow_action_tables WHERE table_name = '{table}'::regclass"
        assert pg.scalar(is_attached) == 1
        with migrations.begin() as conn:            # an Alembic downgrade, then upgrade
            cs.detach(conn, Order)
        assert pg.scalar(is_attached) == 0
        with migrations.begin() as conn:
            cs.attach(conn, Order)
        assert pg.scalar(is_attached) == 1
        with migrations.begin() as conn:
            conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO {app}'))
        assert pg.scalar("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", (app,)) == 0

        with Session(application) as session:
            assert session.execute(text("SELECT current_user")).scalar_one() == app
            order = Order(id=1, status="new")
            session.add(order)
            session.commit()
            rule = cs.add_follow_action_rule(session, order, "status", "changed_to", topics["paid"],
                                             value="paid", persist="False",
                                             payload={"order_id": {"$pk": True}, "from": {"$old": "status"}})
            assert order.on_change_rules == [rule]
            assert not session.dirty, "the appended rules are committed state, not a pending change"
            session.commit()
            stale_session = Session(application, expire_on_commit=False)
            stale = stale_session.get(Order, 1)
            assert stale.on_change_rules == [rule]

            order.status = "paid"
            session.commit()                                        # fires; the trigger removes the rule
            assert session.execute(select(Order.on_change_rules).where(Order.id == 1)).scalar_one() == []

            stale.status = "paid"                                   # a stale copy: rules are not written
            stale_session.commit()
            stale.status = "new"
            stale_session.commit()
            stale_session.close()
            order.status = "paid"
            session.commit()                                        # nothing left to fire
            assert session.execute(select(Order.on_change_rules).where(Order.id == 1)).scalar_one() == []

            # the database refuses a rule on a missing column
            with pytest.raises(DBAPIError, match="no_such_column"):
                cs.add_follow_action_rule(session, order, "no_such_column", "eql", topics["paid"], value=1)
            session.rollback()

            # pending rows get rules in memory, written by their INSERT; a bulk update fires per row
            shipped = cs.follow_action_rule(session, "status", "eql", topics["shipped"], value="shipped",
                                            table=Order)
            for i in range(10, 15):
                o = Order(id=i, status="paid")
                cs.add_follow_action_rule(session, o, "status", "eql", topics["shipped"], value="shipped")
                session.add(o)
            session.commit()
            assert session.get(Order, 10).on_change_rules == [shipped]
            session.execute(update(Order).where(Order.id >= 10).values(status="shipped"))
            session.commit()

        [paid] = pg.wait_delivered_payloads(topics["paid"], 1)
        assert paid == {"order_id": 1, "from": "new"}
        events = pg.wait_delivered_payloads(topics["shipped"], 5)
        assert sorted(e["pk"] for e in events) == list(range(10, 15))
        messages = amqp.get_many(queue, 6 * per_event, timeout=30)
        assert sorted(m.delivery_info["routing_key"] for m in messages) == \
            sorted([topics["paid"]] * per_event + [topics["shipped"]] * 5 * per_event)
        pg.wait_idle()
        assert len(pg.delivered_payloads(topics["paid"])) == 1
        assert amqp.channel.basic_get(queue=queue, no_ack=True) is None
    finally:
        application.dispose()
        migrations.dispose()
        pg.execute(f'DROP TABLE IF EXISTS "{table}"')
        for role in (app, migrator):
            pg.execute(f"REVOKE ALL ON SCHEMA public FROM {role}")
            pg.execute(f"DROP ROLE {role}")
