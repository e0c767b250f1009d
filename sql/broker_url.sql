-- celerysalt.broker_url is read as Celery reads broker_url (kombu and
-- py-amqp): every spelling of Celery's docs, a ";" list of nodes tried in
-- turn (failover), and no password ever shown.  celerysalt_broker_nodes
-- shows the reading; test/integration/test_broker_url.py compares it with
-- kombu's own, test/integration/faults/test_broker_cluster.py fails over
-- on a real two-node cluster.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS celerysalt;
RESET client_min_messages;

\i sql/include/try.sql

-- Celery's spellings: its default, its example configuration, "First steps",
-- the RabbitMQ page; "//", "/%2F", "/" and no path are the vhost "/";
-- localhost (or no host) is 127.0.0.1, as py-amqp connects.
SELECT u.url AS given, n.scheme, n.hostname, n.port, n.virtual_host, n.userid, n.has_password, n.url
  FROM (VALUES (1, 'amqp://'),
               (2, 'amqp://guest:guest@localhost:5672//'),
               (3, 'pyamqp://guest@localhost//'),
               (4, 'amqp://myuser:mypassword@localhost:5672/myvhost'),
               (5, 'librabbitmq://guest:guest@127.0.0.1:5672/%2F'),
               (6, 'amqp://rabbit.example.com/'),
               (7, 'AMQP://User:Pass@Rabbit.Example.COM:05672/Prod'),
               (8, 'amqp://us%40er:p%40ss%3Aw%2Frd%3B@h:5673/a%2Fb'),
               (9, 'amqp://u:p:q@x@h//'),
               (10, 'amqp://:secret@h:0/a/b'),
               (11, 'amqp://u:@[::1]:5674//'),
               (12, 'amqps://u:Secret10@rabbit.example.com//')) AS u(i, url),
       celerysalt_broker_nodes(u.url) n
 ORDER BY u.i;

-- Several nodes, tried in this order; a node without port or vhost takes the
-- previous node's (as kombu switches), never its user or password.
SELECT * FROM celerysalt_broker_nodes(
    'amqp://csfo:Secret1@rabbit1:5673/prod; amqp://csfo:Secret2@rabbit2;pyamqp://rabbit3:5674//;amqp://rabbit4');

-- Refused, with the reason, never repeating the URL or a password.
SELECT u.url, pg_temp.try_text(format('SELECT * FROM celerysalt_broker_nodes(%L)', u.url)) AS error
  FROM (VALUES (1, ''),
               (2, 'rabbit:5672'),
               (3, 'redis://h:6379/0'),
               (4, 'amqp://u:Secret3@h:abc//'),
               (5, 'amqp://u:Sec/ret4@h//'),
               (6, 'amqp://u:Secret5@h//;amqp://v:Sec;ret6@h2//'),
               (7, 'amqp://a//;'),
               (8, 'amqp://a//;b//'),
               (9, 'amqp://u:Sec[ret7@h//'),
               (10, 'amqp://h//?heartbeat=30'),
               (11, 'amqp://u:Secret8%00@h//'),
               (12, 'amqp://h/%FF'),
               (13, 'amqp://u:Secret9@h:70000//'),
               (14, 'amqps://u:Secret10@h:abc//'),
               (15, 'amqp://u:Secret 11@h//')) AS u(i, url)
 ORDER BY u.i;
SELECT count(*) AS leaks
  FROM (VALUES ('amqp://u:Secret3@h:abc//'), ('amqp://u:Sec/ret4@h//'),
               ('amqp://u:Secret5@h//;amqp://v:Sec;ret6@h2//'), ('amqp://u:Sec[ret7@h//'),
               ('amqp://u:Secret9@h:70000//')) AS u(url)
 WHERE pg_temp.try_text(format('SELECT * FROM celerysalt_broker_nodes(%L)', u.url)) ~ 'Sec.?ret';

-- The setting's check: an invalid node is named, no password repeated; a
-- masked password given back ("***") is refused, shown masked.
ALTER SYSTEM SET celerysalt.broker_url = 'amqp://a:Secret12@h1//;amqp://b:Secret13@h2:x//';
ALTER SYSTEM SET celerysalt.broker_url = 'amqp://a:Secret14@h1//;amqp://b:***@h2//';

-- The status views: the configured URL and the node the worker is connected
-- to (test/regress.conf: one node), both without password.
CREATE FUNCTION pg_temp.wait_connected() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..600 LOOP
        IF (SELECT broker_connected FROM celerysalt_status) THEN
            RETURN true;
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
    RETURN false;
END
$$;
SELECT pg_temp.wait_connected() AS connected;
SELECT broker, broker_node FROM celerysalt_status;
SELECT database, broker_node FROM celerysalt_cluster_status WHERE database = current_database();

-- celerysalt_broker_nodes is a pure function: any role may run it.
CREATE ROLE regress_broker_url_nobody;
SET ROLE regress_broker_url_nobody;
SELECT node, hostname, port FROM celerysalt_broker_nodes('amqp://a//;amqp://b:5673//');
RESET ROLE;
DROP ROLE regress_broker_url_nobody;
