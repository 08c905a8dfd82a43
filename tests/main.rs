//! The `august` binary as an operator meets it: real process, real Postgres.
#![allow(clippy::unwrap_used, missing_docs)]

mod audit_command;
mod coda_emulator_command;
mod coda_pack;
mod dashboards;
mod dead_letters_command;
mod demo_command;
mod ingest_command;
mod migrate_command;
mod phi_canary;
mod replicate_command;
mod replicate_kill;
mod serve_end_to_end;
mod settings_errors;
mod sql_endpoint;
mod status_page;
mod support;
mod sync_command;
mod tail_command;
mod traces_end_to_end;
mod traces_ingest;
mod traces_pull_sync;
mod verify_coda;
mod views_command;
mod writeback_end_to_end;
mod writeback_schemathesis;

use std::process::{Command, Output};

/// Runs `august` with exactly these environment variables (nothing inherited that could
/// point it at another database).
pub fn august(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_august"));
    command.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
