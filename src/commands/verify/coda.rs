//! `august verify --coda`: every Coda table the mapping (`AUGUST_CODA_MAPPING`) names, read
//! under Coda's read quota and compared row for row with its view computed from scratch over
//! Postgres, the way the sink judges whether Coda already holds a row
//! ([`august_sinks::coda::compare`]).

use august_schema::access_log::AccessLog;
use august_schema::SettingError;
use august_sinks::coda::client::CodaClient;
use august_sinks::coda::compare::{compare_with, CompareError};
use august_sinks::SinkError;

use crate::settings::Sources;
use crate::ConfigError;

/// One difference between a Coda table and its view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodaDifference {
    /// The view.
    pub view: String,
    /// The row's key.
    pub key: String,
    /// `missing in Coda`, `only in Coda`, `held by several Coda rows`, or `differs: col_a,
    /// col_b` (column names only: values are PHI).
    pub problem: String,
}

/// Compares every mapped Coda table with its view; returns the rows compared and the
/// differences. Without a mapping, a config error naming `AUGUST_CODA_MAPPING`.
pub async fn compare(sources: &Sources) -> anyhow::Result<(usize, Vec<CodaDifference>)> {
    let Some((mapping, settings, _)) = sources.coda().map_err(ConfigError)? else {
        let why = "is not set (august verify --coda compares the Coda tables it maps)";
        return Err(ConfigError(SettingError::new("AUGUST_CODA_MAPPING", why)).into());
    };
    let (_, pg) = sources.database().map_err(ConfigError)?;
    let log = AccessLog::start("coda", august_schema::Actor::CodaSink, pg.clone());
    let client = CodaClient::new(settings, log.clone())?;
    let compared = compare_with(&client, &mapping, &pg).await;
    log.flush().await; // a short-lived command: every Coda read gets its access_log row first
    let comparison = compared.map_err(|e| match e {
        CompareError::Coda(SinkError::Mapping(m)) => {
            anyhow::Error::from(ConfigError(SettingError::new("AUGUST_CODA_MAPPING", m.to_string())))
        }
        other => other.into(),
    })?;
    let differences = comparison
        .differences
        .into_iter()
        .map(|d| CodaDifference { view: d.view, key: d.key, problem: d.problem.to_string() })
        .collect();
    Ok((comparison.rows, differences))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_mapping_coda_verification_is_a_config_error_naming_the_setting() {
        let sources = Sources::load(None, [("DATABASE_URL".to_string(), "postgres://u@127.0.0.1:1/db".to_string())])
            .expect("no file to read");
        let error = compare(&sources).await.expect_err("no mapping");
        assert!(error.downcast_ref::<ConfigError>().is_some(), "{error}");
        assert!(error.to_string().contains("AUGUST_CODA_MAPPING"), "{error}");
    }
}
