-- pg_dataflow 0.1.0 -> 0.2.0. Every schema change since 0.1.0, in the order made;
-- test/integration/upgrade.sh proves that 0.1.0 updated by this script has the
-- catalog of a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION pg_dataflow UPDATE TO '0.2.0'" to load this file. \quit
