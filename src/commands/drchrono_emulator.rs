//! `august drchrono-emulator`: the in-repo DrChrono API with a synthetic clinic, for trying
//! August's pull client without a DrChrono account, for the demo and for benchmarks. It
//! follows DrChrono's OAuth refresh (rotating refresh tokens), hourly quota, page sizes and
//! cursor pagination; see `august_emulators::drchrono`.

use std::net::SocketAddr;
use std::time::Duration;

use august_emulators::drchrono::{self, DrChronoConfig, Envelope, Faults};
use august_schema::SettingError;

use crate::ConfigError;

/// How the emulator runs and what clinic it serves.
#[derive(Debug, clap::Args)]
pub struct EmulatorArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    /// Patients in the synthetic clinic (each with appointments, notes, medications, …).
    #[arg(long, default_value_t = 200)]
    patients: usize,
    /// Seed of the synthetic clinic: the same seed on the same day gives the same clinic.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// OAuth client id the token endpoint accepts.
    #[arg(long, default_value = "emulator-client")]
    client_id: String,
    /// OAuth client secret the token endpoint accepts.
    #[arg(long, default_value = "emulator-secret")]
    client_secret: String,
    /// The first refresh token (each refresh rotates it).
    #[arg(long, default_value = "emulator-refresh-token")]
    refresh_token: String,
    /// Seconds an access token lasts (DrChrono: 48 hours).
    #[arg(long, default_value_t = 172_800)]
    token_lifetime_secs: u64,
    /// API calls allowed per quota window (DrChrono: 500 per hour).
    #[arg(long, default_value_t = 500)]
    calls_per_hour: u32,
    /// Length of the quota window in seconds; shorten it to see the quota turn over.
    #[arg(long, default_value_t = 3600)]
    hour_secs: u64,
    /// Do not enforce the hourly quota (calls are still counted).
    #[arg(long)]
    no_quota: bool,
    /// Fraction of API requests answered 500 or 503.
    #[arg(long, default_value_t = 0.0)]
    error_rate: f64,
    /// Milliseconds added to every request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Fraction of list requests answered 302 to an equivalent URL.
    #[arg(long, default_value_t = 0.0)]
    redirect_rate: f64,
    /// List envelope: `results` (as DrChrono's prose says) or `data` (as its schema says).
    #[arg(long, default_value = "results")]
    envelope: String,
}

fn wrong(flag: &str, why: &str) -> anyhow::Error {
    ConfigError(SettingError::new(flag, why)).into()
}

impl EmulatorArgs {
    /// The emulator's config, or a `ConfigError` naming the flag that is wrong.
    fn config(self) -> anyhow::Result<DrChronoConfig> {
        let envelope = match self.envelope.as_str() {
            "results" => Envelope::Results,
            "data" => Envelope::Data,
            _ => return Err(wrong("--envelope", "must be `results` or `data`")),
        };
        for (flag, rate) in [("--error-rate", self.error_rate), ("--redirect-rate", self.redirect_rate)] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(wrong(flag, "must be between 0 and 1"));
            }
        }
        if self.hour_secs == 0 {
            return Err(wrong("--hour-secs", "must be at least 1"));
        }
        if self.token_lifetime_secs == 0 {
            return Err(wrong("--token-lifetime-secs", "must be at least 1"));
        }
        if self.calls_per_hour == 0 && !self.no_quota {
            return Err(wrong("--calls-per-hour", "must be at least 1 (--no-quota turns the quota off)"));
        }
        Ok(DrChronoConfig {
            client_id: self.client_id,
            client_secret: self.client_secret,
            refresh_token: self.refresh_token,
            token_lifetime: Duration::from_secs(self.token_lifetime_secs),
            calls_per_window: (!self.no_quota).then_some(self.calls_per_hour),
            window: Duration::from_secs(self.hour_secs),
            faults: Faults {
                error_rate: self.error_rate,
                latency: Duration::from_millis(self.latency_ms),
                redirect_rate: self.redirect_rate,
            },
            patients: self.patients,
            seed: self.seed,
            today: None,
            envelope,
        })
    }
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn run(args: EmulatorArgs) -> anyhow::Result<()> {
    let listen = args.listen;
    let config = args.config()?;
    let client_id = config.client_id.clone();
    let emulator = drchrono::serve(listen, config).await?;
    let counts = emulator.counts();
    eprintln!(
        "august: DrChrono emulator on {} ({} patients, {} appointments); token URL {}/o/token/ for client {client_id}",
        emulator.base_url(),
        counts["patients"],
        counts["appointments"],
        emulator.base_url(),
    );
    println!("{}", emulator.base_url());
    crate::shutdown_signal().await;
    emulator.stop().await;
    Ok(())
}
