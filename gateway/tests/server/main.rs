//! Integration tests of the `containerpub` server: the real binary, real workers, a real
//! SQLite file and a real PostgreSQL database.

mod accounts;
mod cluster;
mod conventions;
mod credentials;
mod dart_builds;
mod dependencies;
mod deploys;
mod docs_reference;
mod docs_runnable;
mod docs_security;
mod fair_share;
mod first_hour;
mod function_database;
mod harness;
mod http_function;
mod http_limits;
mod installs;
mod invocations;
mod journal;
mod lifecycle;
mod log_flood;
mod origins;
mod overload;
mod own_postgres;
mod sandbox;
mod scale_out;
mod secrets;
mod shapes;
mod tenancy;
mod test_host;
