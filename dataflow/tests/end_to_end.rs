//! Through `cdc` on a real Postgres (filled in below).
