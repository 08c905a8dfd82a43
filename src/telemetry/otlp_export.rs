//! Where traces go: OpenTelemetry's standard variables read once ([`TraceExport::from_sources`])
//! into an OTLP/HTTP (protobuf) exporter behind a batch processor ([`TraceExport::provider`]).
//!
//! Tracing is off, at no cost, unless an endpoint is set (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
//! as is, or `OTEL_EXPORTER_OTLP_ENDPOINT` + `/v1/traces`, as the OTLP exporter specification
//! says); `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off again. A value
//! August cannot honour is a [`SettingError`] naming the variable (exit code 2), rather than
//! the SDK's silent fallback. Headers, timeouts and batch sizes (`OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_BSP_*`, …) are read by the SDK itself.

use std::time::Duration;

use august_schema::SettingError;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;

use crate::settings::Sources;

/// The service name when `OTEL_SERVICE_NAME` is unset.
const DEFAULT_SERVICE: &str = "august";
/// The longest a flush at exit may hold the process up.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and what to export, checked.
#[derive(Debug)]
pub struct TraceExport {
    /// The OTLP/HTTP traces URL (`…/v1/traces`).
    pub endpoint: String,
    /// `service.name` of every span.
    pub service: String,
    /// Which traces are kept.
    pub sampler: Sampler,
}

impl TraceExport {
    /// The export the environment asks for, `None` when tracing is off.
    pub fn from_sources(sources: &Sources) -> Result<Option<Self>, SettingError> {
        if flag(sources, "OTEL_SDK_DISABLED")? {
            return Ok(None);
        }
        match sources.standard("OTEL_TRACES_EXPORTER").map(str::trim) {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(_) => return Err(SettingError::new("OTEL_TRACES_EXPORTER", "must be `otlp` or `none`")),
        }
        let Some(endpoint) = endpoint(sources)? else { return Ok(None) };
        for name in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if sources.standard(name).is_some_and(|p| p.trim() != "http/protobuf") {
                return Err(SettingError::new(name, "must be `http/protobuf` (the only OTLP protocol August speaks)"));
            }
        }
        let service = sources.standard("OTEL_SERVICE_NAME").unwrap_or(DEFAULT_SERVICE).trim().to_string();
        let sampler = sampler(sources.standard("OTEL_TRACES_SAMPLER"), sources.standard("OTEL_TRACES_SAMPLER_ARG"))?;
        Ok(Some(Self { endpoint, service, sampler }))
    }

    /// The tracer provider: OTLP/HTTP protobuf over the blocking reqwest client, batched (a
    /// thread of its own, so no runtime is needed to export or to flush at exit).
    pub fn provider(self) -> Result<SdkTracerProvider, SettingError> {
        let variable = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(self.endpoint)
            .build()
            .map_err(|e| SettingError::new(variable, format!("cannot build the OTLP exporter: {e}")))?;
        Ok(SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(self.sampler)
            .with_resource(Resource::builder().with_service_name(self.service).build())
            .build())
    }
}

/// A boolean variable (`true`/`false`, any case); `false` when unset.
fn flag(sources: &Sources, name: &'static str) -> Result<bool, SettingError> {
    match sources.standard(name).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(false),
        Some(v) if v == "true" => Ok(true),
        Some(v) if v == "false" => Ok(false),
        Some(_) => Err(SettingError::new(name, "must be `true` or `false`")),
    }
}

/// The traces URL: the signal's own variable as is, else the base one with `/v1/traces`.
fn endpoint(sources: &Sources) -> Result<Option<String>, SettingError> {
    let (name, url) =
        match (sources.standard("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"), sources.standard("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            (Some(url), _) => ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url.trim().to_string()),
            (None, Some(base)) => {
                ("OTEL_EXPORTER_OTLP_ENDPOINT", format!("{}/v1/traces", base.trim().trim_end_matches('/')))
            }
            (None, None) => return Ok(None),
        };
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() => Ok(Some(url)),
        _ => Err(SettingError::new(name, "must be an http:// or https:// URL, e.g. http://127.0.0.1:4318")),
    }
}

/// `OTEL_TRACES_SAMPLER` (+ `OTEL_TRACES_SAMPLER_ARG`, a ratio from 0 to 1, default 1), as
/// the specification names them; the default is `parentbased_always_on`.
fn sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, SettingError> {
    let ratio =
        || -> Result<f64, SettingError> {
            match arg.map(str::trim) {
                None => Ok(1.0),
                Some(text) => text.parse::<f64>().ok().filter(|r| (0.0..=1.0).contains(r)).ok_or_else(|| {
                    SettingError::new("OTEL_TRACES_SAMPLER_ARG", "must be a ratio from 0 to 1, e.g. 0.25")
                }),
            }
        };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    Ok(match name.map(str::trim).unwrap_or("parentbased_always_on") {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        _ => {
            return Err(SettingError::new(
                "OTEL_TRACES_SAMPLER",
                "must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export(pairs: &[(&str, &str)]) -> Result<Option<TraceExport>, SettingError> {
        let env = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        TraceExport::from_sources(&Sources::load(None, env).unwrap())
    }

    #[test]
    fn no_endpoint_means_no_tracing() {
        assert!(export(&[]).unwrap().is_none());
        assert!(export(&[("OTEL_SERVICE_NAME", "x"), ("OTEL_TRACES_SAMPLER", "always_on")]).unwrap().is_none());
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_kept() {
        let base = export(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318/")]).unwrap().unwrap();
        assert_eq!(base.endpoint, "http://127.0.0.1:4318/v1/traces");
        assert_eq!(base.service, "august");
        let signal = export(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://collector:4318/custom"),
            ("OTEL_SERVICE_NAME", "august-clinic"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(signal.endpoint, "https://collector:4318/custom");
        assert_eq!(signal.service, "august-clinic");
    }

    #[test]
    fn disabled_or_exporter_none_turns_tracing_off() {
        let url = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(export(&[url, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap().is_none());
        assert!(export(&[url, ("OTEL_TRACES_EXPORTER", "none")]).unwrap().is_none());
        assert!(export(&[url, ("OTEL_SDK_DISABLED", "false")]).unwrap().is_some());
    }

    #[test]
    fn samplers_parse_as_the_specification_names_them() {
        let url = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let with = |name: &str, arg: Option<&str>| {
            let mut env = vec![url, ("OTEL_TRACES_SAMPLER", name)];
            env.extend(arg.map(|a| ("OTEL_TRACES_SAMPLER_ARG", a)));
            format!("{:?}", export(&env).unwrap().unwrap().sampler)
        };
        assert_eq!(with("always_off", None), "AlwaysOff");
        assert_eq!(with("traceidratio", Some("0.25")), "TraceIdRatioBased(0.25)");
        assert_eq!(with("traceidratio", None), "TraceIdRatioBased(1.0)");
        assert!(with("parentbased_traceidratio", Some("0.5")).starts_with("ParentBased("), "parent based");
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        let url = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        for (env, variable) in [
            (vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318")], "OTEL_EXPORTER_OTLP_ENDPOINT"),
            (vec![("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            (vec![url, ("OTEL_TRACES_SAMPLER", "sometimes")], "OTEL_TRACES_SAMPLER"),
            (
                vec![url, ("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "2")],
                "OTEL_TRACES_SAMPLER_ARG",
            ),
            (vec![url, ("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED"),
            (vec![url, ("OTEL_TRACES_EXPORTER", "jaeger")], "OTEL_TRACES_EXPORTER"),
            (vec![url, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ] {
            let err = export(&env).unwrap_err();
            assert_eq!(err.setting, variable, "{env:?}: {err}");
        }
    }
}
