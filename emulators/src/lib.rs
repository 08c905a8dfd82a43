//! Stand-ins for the SaaS August talks to, each following the public API spec kept in
//! `../shared/reference/`: [`coda`] (Coda API 1.5.0) and [`drchrono`] (DrChrono REST v4).
//! Tests, the demo and the benchmarks use them; production crates never depend on this one.
#![forbid(missing_docs)]

pub mod coda;
pub mod drchrono;
