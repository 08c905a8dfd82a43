//! A wrong or missing setting: one line naming it, exit code 2, no secret shown.

use crate::{august, stderr};

fn assert_config_error(out: &std::process::Output, setting: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.contains(setting), "names {setting}: {err}");
}

#[test]
fn a_malformed_database_url_exits_2_naming_it_without_the_password() {
    let out = august(&["migrate"], &[("DATABASE_URL", "postgres://august:hunter2@db:notaport/clinical")]);
    assert_config_error(&out, "DATABASE_URL");
    assert!(!stderr(&out).contains("hunter2"));
}

#[test]
fn no_database_setting_exits_2_naming_database_url() {
    assert_config_error(&august(&["migrate"], &[]), "DATABASE_URL");
}

#[tokio::test]
async fn a_database_that_does_not_exist_exits_2_naming_the_setting() {
    let url = august_testkit::cluster().url("no_such_database_here");
    assert_config_error(&august(&["migrate"], &[("DATABASE_URL", &url)]), "DATABASE_URL");
}

#[test]
fn a_bad_number_exits_2_naming_it() {
    let out = august(&["migrate"], &[("DATABASE_URL", "postgres://u@h/d"), ("DB_CONNECT_TIMEOUT_SECS", "soon")]);
    assert_config_error(&out, "DB_CONNECT_TIMEOUT_SECS");
}

#[test]
fn a_malformed_config_file_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("august.toml");
    std::fs::write(&file, "[database\nurl = ").unwrap();
    assert_config_error(&august(&["--config", file.to_str().unwrap(), "migrate"], &[]), "--config");
}

#[test]
fn a_bad_log_format_exits_2_naming_it() {
    let out = august(&["migrate"], &[("DATABASE_URL", "postgres://u@h/d"), ("AUGUST_LOG_FORMAT", "xml")]);
    assert_config_error(&out, "AUGUST_LOG_FORMAT");
}

#[test]
fn settings_prints_every_setting() {
    let out = august(&["settings"], &[]);
    assert!(out.status.success());
    let table = String::from_utf8_lossy(&out.stdout);
    for name in ["DATABASE_URL", "DB_HOST", "DB_PASSWORD", "AUGUST_LOG_FORMAT"] {
        assert!(table.contains(name), "{name}");
    }
}

#[test]
fn drchrono_pull_settings_are_checked_before_anything_runs() {
    let base = [("DATABASE_URL", "postgres://u@127.0.0.1:1/d")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        base.iter().chain(extra).copied().collect()
    };
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("DRCHRONO_CLIENT_ID", "client")], "DRCHRONO_CLIENT_SECRET"),
        (&[("DRCHRONO_CLIENT_ID", "client"), ("DRCHRONO_CLIENT_SECRET", "s3cret-value")], "DRCHRONO_TOKEN_KEY"),
        (
            &[("DRCHRONO_CLIENT_ID", "c"), ("DRCHRONO_CLIENT_SECRET", "s3cret-value"), ("DRCHRONO_TOKEN_KEY", "short")],
            "DRCHRONO_TOKEN_KEY",
        ),
        (
            &[
                ("DRCHRONO_CLIENT_ID", "c"),
                ("DRCHRONO_CLIENT_SECRET", "s3cret-value"),
                ("DRCHRONO_TOKEN_KEY", "a key long enough to seal"),
                ("DRCHRONO_CALLS_RESERVE", "600"),
            ],
            "DRCHRONO_CALLS_RESERVE",
        ),
        (&[], "DRCHRONO_CLIENT_ID"),
    ];
    for (extra, setting) in cases {
        let out = august(&["sync", "all"], &with(extra));
        assert_config_error(&out, setting);
        assert!(!stderr(&out).contains("s3cret-value"), "no secret in the message");
    }
}

#[test]
fn the_http_limits_the_metrics_address_and_the_slot_are_checked_before_anything_runs() {
    let base = [
        ("DATABASE_URL", "postgres://u@127.0.0.1:1/d"),
        ("DRCHRONO_WEBHOOK_SECRET", "drchrono-secret-0123456789"),
        ("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789"),
        ("AUGUST_HTTP_ADDR", "127.0.0.1:0"),
    ];
    /// A command, the settings added, and the setting the error must name.
    type Case = (&'static str, &'static [(&'static str, &'static str)], &'static str);
    let cases: [Case; 5] = [
        ("ingest", &[("AUGUST_HTTP_MAX_IN_FLIGHT", "0")], "AUGUST_HTTP_MAX_IN_FLIGHT"),
        ("ingest", &[("AUGUST_HTTP_HEADER_TIMEOUT_SECS", "never")], "AUGUST_HTTP_HEADER_TIMEOUT_SECS"),
        ("serve", &[("AUGUST_METRICS_ADDR", "everywhere")], "AUGUST_METRICS_ADDR"),
        ("replicate", &[("AUGUST_METRICS_ADDR", "9464")], "AUGUST_METRICS_ADDR"),
        ("replicate", &[("AUGUST_SLOT", "Production-Slot")], "AUGUST_SLOT"),
    ];
    for (command, extra, setting) in cases {
        let env: Vec<(&str, &str)> = base.iter().chain(extra).copied().collect();
        assert_config_error(&august(&[command], &env), setting);
    }
}

#[test]
fn a_short_coda_writeback_token_exits_2_naming_it() {
    let out = august(
        &["ingest"],
        &[
            ("DATABASE_URL", "postgres://u@127.0.0.1:1/d"),
            ("DRCHRONO_WEBHOOK_SECRET", "drchrono-secret-0123456789"),
            ("DEEPCURA_SHARED_SECRET", "deepcura-secret-0123456789"),
            ("AUGUST_METRICS_ADDR", "127.0.0.1:0"),
            ("AUGUST_SQL_ADDR", "127.0.0.1:0"),
            ("CODA_WRITEBACK_TOKEN", "short-tok"),
        ],
    );
    assert_config_error(&out, "CODA_WRITEBACK_TOKEN");
    assert!(!stderr(&out).contains("short-tok"), "the token is not shown");
}

#[test]
fn a_mapping_that_sends_phi_its_table_does_not_allow_exits_2_naming_every_such_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mapping.toml");
    let demo = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/demo-mapping.toml")).unwrap();
    // scheduling_ops carries names, birth dates and phones: take `direct` out of its allowance.
    let narrowed = demo.replacen(
        "view = \"scheduling_ops\"\ntable_id = \"grid-scheduling-ops\"\nallow = [\"direct\", ",
        "view = \"scheduling_ops\"\ntable_id = \"grid-scheduling-ops\"\nallow = [",
        1,
    );
    assert_ne!(narrowed, demo, "the demo mapping allows scheduling_ops direct PHI");
    std::fs::write(&file, narrowed).unwrap();
    let env = [("DATABASE_URL", "postgres://u@127.0.0.1:1/d"), ("AUGUST_CODA_MAPPING", file.to_str().unwrap())];
    let out = august(&["replicate"], &env);
    assert_config_error(&out, "AUGUST_CODA_MAPPING");
    let err = stderr(&out);
    for column in ["patient_name (direct)", "date_of_birth (direct)", "phone (direct)", "email (direct)"] {
        assert!(err.contains(column), "names {column}: {err}");
    }
    assert!(err.contains("view scheduling_ops"), "{err}");
}
