-- celerysalt upgrade script 0.1.0 -> 0.2.0.
--
-- Every change made to sql/install/ after 0.1.0 is written here too, so that
-- ALTER EXTENSION celerysalt UPDATE brings an existing 0.1.0 installation to
-- exactly what CREATE EXTENSION installs.  test/t/050_upgrade.pl installs
-- sql/releases/celerysalt--0.1.0.sql (0.1.0 as released, never edited),
-- runs the update and compares the catalog with a fresh install.
\echo Use "ALTER EXTENSION celerysalt UPDATE" to load this file. \quit
