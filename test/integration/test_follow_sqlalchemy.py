"""Follow actions through SQLAlchemy 2 (issue 5, docs/follow-actions.md "SQLAlchemy").

The documented mapping and calls, run as written against the rig's cluster:
a declarative model with a JSONB ``on_change_rules`` column, a rule built by
``celerysalt_follow_action_rule()`` and appended with the documented
``||`` update, then the row changed through the unit of work
(``order.status = ...; session.commit()``) and through an ORM-enabled bulk
``update()``.  Every matching row's event is confirmed by the broker
(``celerysalt_events``) and reaches a queue bound to its topic; the fired
``persist`` False rule is gone after ``session.refresh()``.
"""

from __future__ import annotations

import json
import uuid

import pytest

sqlalchemy = pytest.importorskip("sqlalchemy")

from sqlalchemy import bindparam, create_engine, text, update  # noqa: E402
from sqlalchemy.dialects.postgresql import JSONB  # noqa: E402
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column  # noqa: E402


@pytest.fixture(scope="module")
def engine(pg):
    eng = create_engine(f"postgresql+psycopg://postgres@/{pg.dbname}"
                        f"?host={pg.sock_dir}&port={pg.port}")
    yield eng
    eng.dispose()


def test_documented_sqlalchemy_usage(pg, amqp, run_id, engine):
    table = f"csit_sa_orders_{run_id}"
    topic_paid = f"csit.{run_id}.sa.paid"
    topic_shipped = f"csit.{run_id}.sa.shipped"
    per_event = len([t for t in pg.scalar("SHOW celerysalt.dispatcher_tasks").split(",") if t.strip()])
    queue = amqp.declare_queue(f"csit_sa_{run_id}_{uuid.uuid4().hex[:6]}", [topic_paid, topic_shipped])

    class Base(DeclarativeBase):
        pass

    # the mapping of docs/follow-actions.md, with this run's table name
    class Order(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(primary_key=True)
        status: Mapped[str]
        on_change_rules: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'"))

    Base.metadata.create_all(engine)
    try:
        with engine.begin() as conn:  # what the Alembic migration runs
            conn.execute(text("SELECT celerysalt_attach_follow_actions(CAST(:tbl AS regclass))"),
                         {"tbl": table})

        with Session(engine) as session:
            order = Order(id=42, status="new")
            session.add(order)
            session.commit()

            rule = session.execute(text(
                "SELECT celerysalt_follow_action_rule('status', 'eql', :topic, CAST(:value AS jsonb),"
                " persist => 'False', tbl => CAST(:tbl AS regclass))"),
                {"topic": topic_paid, "value": json.dumps("paid"), "tbl": table}).scalar_one()
            session.execute(update(Order).where(Order.id == 42).values(
                on_change_rules=Order.on_change_rules.op("||")(bindparam("rules", [rule], type_=JSONB))))
            session.commit()
            session.refresh(order)
            assert order.on_change_rules == [rule]

            order.status = "paid"
            session.commit()                                   # fires
            [event] = pg.wait_delivered_payloads(topic_paid, 1)
            assert event["pk"] == 42 and event["old"] == "new" and event["new"] == "paid"
            session.refresh(order)
            assert order.on_change_rules == [], "the fired persist False rule was removed in the same UPDATE"

            # a bulk ORM update fires per matching row
            shipped = session.execute(text(
                "SELECT celerysalt_follow_action_rule('status', 'eql', :topic, CAST(:value AS jsonb),"
                " tbl => CAST(:tbl AS regclass))"),
                {"topic": topic_shipped, "value": json.dumps("shipped"), "tbl": table}).scalar_one()
            session.add_all([Order(id=100 + i, status="paid", on_change_rules=[shipped]) for i in range(10)])
            session.commit()
            session.execute(update(Order).where(Order.status == "paid").values(status="shipped"))
            session.commit()
            events = pg.wait_delivered_payloads(topic_shipped, 10)
            assert sorted(e["pk"] for e in events) == list(range(100, 110))
            assert all(e["old"] == "paid" and e["new"] == "shipped" for e in events)
    finally:
        Base.metadata.drop_all(engine)

    # order 42 has no rule left (it fired and was removed): the broker got 1 + 10 events
    messages = amqp.get_many(queue, 11 * per_event, timeout=30)
    assert sorted(m.delivery_info["routing_key"] for m in messages) == \
        sorted([topic_paid] * per_event + [topic_shipped] * 10 * per_event)
    assert amqp.channel.basic_get(queue=queue, no_ack=True) is None
