//! Test support: a real PostgreSQL for every test, with nothing running beforehand.
//!
//! The first test of a test binary that asks for a database starts one private cluster for
//! the whole run ([`cluster`]): `initdb` in a temporary folder, `wal_level = logical`, a free
//! loopback port, run as the `postgres` OS user when the tests run as root (Postgres refuses
//! to run as root). The migrations are applied once to a template database, and each test
//! gets its own copy of it ([`fresh_db`]), so tests never see each other's rows.
//!
//! Clean-up does not depend on the test process ending well: a small guardian shell, started
//! beside the cluster, blocks reading a pipe whose other end only this process holds. When
//! the process exits for any reason (even `kill -9`), the pipe closes and the guardian stops
//! the cluster and removes its folder.
//!
//! The private cluster runs with `ssl = on` and the test-only certificates of `certs/` (a CA,
//! a server certificate for `localhost` only, and an unrelated CA), plus a SCRAM password user
//! allowed only over TLS ([`Cluster::SCRAM_USER`]); the `postgres` superuser keeps trust auth.
//!
//! [`proxy::FaultProxy`] sits between a client and a server (Postgres, an emulator) and injects
//! network faults: delay, dropped connections, resets, a blackhole.
//!
//! [`otlp::OtlpReceiver`] stands in for an OpenTelemetry collector (OTLP/HTTP traces) and keeps
//! the spans it is sent, so tests can assert a trace's tree and links.
//! [`spans`] records the spans a test binary makes, in memory, for tests of traces.
//!
//! With `AUGUST_TEST_DATABASE_URL` set, tests use that server instead (it must allow
//! `CREATE DATABASE`; replication tests need `wal_level = logical` there too).
#![forbid(missing_docs)]

mod cluster;
mod database;
pub mod otlp;
pub mod proxy;
pub mod refusals;
pub mod spans;

pub use cluster::{cluster, test_certs, Cluster};
pub use database::{empty_db, fresh_db, TestDb};
