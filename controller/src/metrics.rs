//! Prometheus metrics (docs/metrics.md), in the text exposition format (`prometheus` crate).
//!
//! * `GET /metrics` — the controller's own health: agent sessions, reports ingested by kind,
//!   rejections and errors, ingest latency, notification deliveries and failures, jobs and
//!   notifications by state. No tenant's data: counts only, no names.
//! * `GET /api/v1/metrics` — a tenant's fleet, behind its bearer token: per host and device
//!   gauges (disk health and temperature, pool and array state, scrub age, container update
//!   status, pending updates, last seen). Rendered per scrape from the store.
//!
//! Names follow Prometheus conventions: `unity_` prefix, base units in the name (`_seconds`,
//! `_celsius`), `_total` for counters; labels are bounded (kinds, states, schemes — and in the
//! fleet endpoint the tenant's own hosts and devices).

use std::sync::OnceLock;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// The controller's process-wide counters.
pub struct Metrics {
    pub registry: Registry,
    /// Reports stored, by kind.
    pub reports: IntCounterVec,
    /// Reports refused for good (`rejected`) or failed (`store_error`, `host_gone`), by kind.
    pub report_failures: IntCounterVec,
    /// Time to apply one report (transaction included), by kind.
    pub ingest_seconds: HistogramVec,
    /// Notification attempts by channel scheme and outcome (`delivered`, `retry`, `dead`).
    pub notification_attempts: IntCounterVec,
    /// When the controller's CA certificate ends (Unix seconds; absent until known): the CA
    /// belongs to no host, so this gauge, not an alert row, is where a rule can watch it.
    pub ca_not_after: prometheus::IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let reports = IntCounterVec::new(
        Opts::new(
            "unity_reports_ingested_total",
            "Agent reports applied to the store, by kind.",
        ),
        &["kind"],
    )?;
    let report_failures = IntCounterVec::new(
        Opts::new(
            "unity_report_failures_total",
            "Agent reports not applied: rejected for good, or failed (the agent resends), by kind and reason.",
        ),
        &["kind", "reason"],
    )?;
    let ingest_seconds = HistogramVec::new(
        HistogramOpts::new(
            "unity_ingest_duration_seconds",
            "Time to apply one agent report, its transaction included, by kind.",
        )
        .buckets(vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]),
        &["kind"],
    )?;
    let notification_attempts = IntCounterVec::new(
        Opts::new(
            "unity_notification_attempts_total",
            "Notification delivery attempts, by channel scheme and outcome (delivered, retry, dead).",
        ),
        &["scheme", "outcome"],
    )?;
    let ca_not_after = prometheus::IntGauge::new(
        "unity_ca_expiry_timestamp_seconds",
        "When the controller's CA certificate expires, as a Unix time: every host certificate ends with it.",
    )?;
    registry.register(Box::new(ca_not_after.clone()))?;
    registry.register(Box::new(reports.clone()))?;
    registry.register(Box::new(report_failures.clone()))?;
    registry.register(Box::new(ingest_seconds.clone()))?;
    registry.register(Box::new(notification_attempts.clone()))?;
    Ok(Metrics {
        registry,
        reports,
        report_failures,
        ingest_seconds,
        notification_attempts,
        ca_not_after,
    })
}

static METRICS: OnceLock<Option<Metrics>> = OnceLock::new();

/// The process's metrics (`None` only if the registry could not be built, which the first
/// call logs; instrumented code then counts nothing rather than fail).
pub fn get() -> Option<&'static Metrics> {
    METRICS
        .get_or_init(|| match build() {
            Ok(metrics) => Some(metrics),
            Err(error) => {
                tracing::error!(%error, "could not build the metrics registry");
                None
            }
        })
        .as_ref()
}

/// Renders `registry` and `extra` families in the text format.
pub fn render(registry: &Registry, extra: &Registry) -> String {
    let mut families = registry.gather();
    families.extend(extra.gather());
    let mut out = Vec::new();
    if let Err(error) = TextEncoder::new().encode(&families, &mut out) {
        tracing::error!(%error, "could not encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// A gauge family for one scrape.
pub fn gauge(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Option<IntGaugeVec> {
    let gauge = IntGaugeVec::new(Opts::new(name, help), labels).ok()?;
    registry.register(Box::new(gauge.clone())).ok()?;
    Some(gauge)
}

/// A float gauge family for one scrape.
pub fn float_gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Option<prometheus::GaugeVec> {
    let gauge = prometheus::GaugeVec::new(Opts::new(name, help), labels).ok()?;
    registry.register(Box::new(gauge.clone())).ok()?;
    Some(gauge)
}

/// Health as a number for dashboards and alert rules: 0 ok, 1 unknown, 2 warning,
/// 3 critical.
pub fn health_value(health: &str) -> i64 {
    use unity_protocol::latest::Health;
    match health.parse() {
        Ok(Health::Ok) => 0,
        Ok(Health::Warning) => 2,
        Ok(Health::Critical) => 3,
        Ok(Health::Unknown) | Err(_) => 1,
    }
}
