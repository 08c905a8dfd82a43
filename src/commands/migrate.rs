//! `august migrate`: applies the embedded migrations to the configured database.

use august_schema::{connect, migrate, ErrorKind, Migration, SettingError};

use crate::settings::Sources;
use crate::ConfigError;

/// Connects, applies what is pending and prints what it did.
pub async fn run(sources: &Sources) -> anyhow::Result<()> {
    let (settings, config) = sources.database().map_err(ConfigError)?;
    let mut client = match connect(&config).await {
        Ok(client) => client,
        // Wrong password, no such database, no such user: the setting is at fault.
        Err(e) if e.kind() == ErrorKind::Permanent => {
            return Err(ConfigError(SettingError::new(settings.setting_name(), e.to_string())).into())
        }
        Err(e) => return Err(e.into()),
    };
    let report = migrate(&mut client, Migration::embedded()).await?;
    if report.applied.is_empty() {
        println!(
            "migrations: database {} is up to date ({} applied before)",
            settings.describe(),
            report.already_applied
        );
    } else {
        println!(
            "migrations: applied {} to {} ({}); {} applied before",
            report.applied.len(),
            settings.describe(),
            report.applied.join(", "),
            report.already_applied
        );
    }
    Ok(())
}
