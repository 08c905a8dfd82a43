//! The settings' own tests: sources, precedence and every refusal naming its setting.
use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn debug_lists_keys_but_no_value() {
    let sources =
        Sources::load(None, env(&[("DB_PASSWORD", "hunter2-secret"), ("CODA_API_TOKEN", "tok-123")])).unwrap();
    let shown = format!("{sources:?} {sources:#?}");
    assert!(shown.contains("DB_PASSWORD") && shown.contains("CODA_API_TOKEN"), "{shown}");
    assert!(!shown.contains("hunter2") && !shown.contains("tok-123"), "{shown}");
}

#[test]
fn nothing_set_names_database_url() {
    let err = Sources::load(None, env(&[])).unwrap().database().unwrap_err();
    assert_eq!(err.setting, "DATABASE_URL");
}

#[test]
fn the_seed_parts_build_a_connection() {
    let sources = Sources::load(
        None,
        env(&[("DB_HOST", "10.0.0.3"), ("DB_NAME", "clinical"), ("DB_USER", "august"), ("DB_PASSWORD", "pw")]),
    )
    .unwrap();
    let (settings, config) = sources.database().unwrap();
    assert_eq!(settings.describe(), "10.0.0.3:5432/clinical as august");
    assert_eq!(config.get_password(), Some(&b"pw"[..]));
    assert_eq!(settings.pool, PoolSettings::default());
}

#[test]
fn a_missing_part_is_named() {
    let err = Sources::load(None, env(&[("DB_HOST", "h"), ("DB_USER", "u")])).unwrap().database().unwrap_err();
    assert_eq!(err.setting, "DB_NAME");
}

#[test]
fn url_and_parts_together_are_refused() {
    let err = Sources::load(None, env(&[("DATABASE_URL", "postgres://u@h/d"), ("DB_HOST", "h")]))
        .unwrap()
        .database()
        .unwrap_err();
    assert!(err.to_string().contains("DB_HOST"), "{err}");
}

#[test]
fn a_bad_number_is_named() {
    let err = Sources::load(None, env(&[("DATABASE_URL", "postgres://u@h/d"), ("DB_POOL_MAX_SIZE", "ten")]))
        .unwrap()
        .database()
        .unwrap_err();
    assert_eq!(err.setting, "DB_POOL_MAX_SIZE");
}

#[test]
fn the_tls_settings_are_read_and_a_bad_one_is_named() {
    let database = |pairs: &[(&str, &str)]| {
        let mut all = vec![("DATABASE_URL", "postgres://u@127.0.0.1/d")];
        all.extend_from_slice(pairs);
        Sources::load(None, env(&all)).unwrap().database()
    };
    let (settings, config) = database(&[("DB_SSLMODE", "require")]).unwrap();
    assert_eq!(settings.tls.mode, Some(august_schema::tls::SslMode::Require));
    assert_eq!(config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    assert_eq!(database(&[("DB_SSLMODE", "verify_full")]).unwrap_err().setting, "DB_SSLMODE");
    let missing = [("DB_SSLMODE", "verify-full"), ("DB_SSLROOTCERT", "/nonexistent/ca.pem")];
    assert_eq!(database(&missing).unwrap_err().setting, "DB_SSLROOTCERT");
    assert_eq!(database(&[("DB_SSLCERT", "/c.pem")]).unwrap_err().setting, "DB_SSLKEY");
}

#[test]
fn the_file_is_read_and_the_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("august.toml");
    std::fs::write(
        &path,
        "[database]\nurl = \"postgres://u@filehost/d\"\npool_max_size = 4\n[log]\nformat = \"json\"\n",
    )
    .unwrap();
    let sources = Sources::load(Some(&path), env(&[("AUGUST_LOG_FORMAT", "text")])).unwrap();
    let (settings, _) = sources.database().unwrap();
    assert_eq!(settings.describe(), "filehost:5432/d as u");
    assert_eq!(settings.pool.max_size, 4);
    assert!(!sources.log().unwrap().1, "environment overrides the file");
}

#[test]
fn an_unknown_file_key_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("august.toml");
    std::fs::write(&path, "[database]\nurll = \"x\"\n").unwrap();
    let err = Sources::load(Some(&path), env(&[])).unwrap_err();
    assert!(err.setting.starts_with("database.urll"), "{err}");
}

#[test]
fn the_writeback_token_is_optional_but_never_short() {
    let token = |value: &str| Sources::load(None, env(&[("CODA_WRITEBACK_TOKEN", value)])).unwrap().writeback_token();
    assert!(Sources::load(None, env(&[])).unwrap().writeback_token().unwrap().is_none());
    assert_eq!(token("short").unwrap_err().setting, "CODA_WRITEBACK_TOKEN");
    assert_eq!(token("a-long-enough-writeback-token").unwrap().unwrap().expose(), "a-long-enough-writeback-token");
}

#[test]
fn the_readme_carries_the_current_settings_table() {
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&markdown_table()),
        "README's settings table is stale: paste the output of `august settings`"
    );
}
