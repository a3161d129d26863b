//! # qoin-metrics
//!
//! Owns how Qoin's programs export Prometheus metrics. The metric types, their registry and
//! the exposition format are `prometheus-client`'s (the library rust-libp2p's own metrics use,
//! so the network's metrics can join the same registry); `/metrics` is served by `axum`.
//! What this crate adds: a [`Registry`] that can be shared between threads and registers
//! metrics by their full Prometheus name (counters too: `x_total`), latency histograms with
//! one set of buckets ([`LATENCY_BUCKETS`]) whose series differ by labels, and [`serve`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

pub use prometheus_client;
/// A count that only goes up.
pub type Counter = prometheus_client::metrics::counter::Counter;
/// A value that goes up and down.
pub type Gauge = prometheus_client::metrics::gauge::Gauge<f64, AtomicU64>;
/// A histogram of observations (durations in seconds, here).
pub type Histogram = prometheus_client::metrics::histogram::Histogram;

/// Label pairs of one series.
type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Bucket bounds of latency histograms, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// Records how long something took in a latency histogram.
pub fn observe(h: &Histogram, d: Duration) {
    h.observe(d.as_secs_f64());
}

/// The metrics of one program.
#[derive(Default)]
pub struct Registry {
    inner: Mutex<prometheus_client::registry::Registry>,
    histograms: Mutex<HashMap<String, HistogramFamily>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Registry")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves the metrics usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Hands the underlying prometheus-client registry to `f`, for a library that registers
    /// its own metrics there (rust-libp2p's transport and swarm metrics).
    pub fn register_with<T>(&self, f: impl FnOnce(&mut prometheus_client::registry::Registry) -> T) -> T {
        f(&mut lock(&self.inner))
    }

    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Gauge {
        let g = Gauge::default();
        lock(&self.inner).register(name, help, g.clone());
        g
    }

    /// Registers a counter under its full name, which ends in `_total`.
    pub fn counter(&self, name: &str, help: &str) -> Counter {
        let c = Counter::default();
        // The library appends `_total` to a counter's name itself.
        lock(&self.inner).register(name.strip_suffix("_total").unwrap_or(name), help, c.clone());
        c
    }

    /// A latency histogram (seconds, [`LATENCY_BUCKETS`]) with `labels`, e.g.
    /// `[("method", "NewPayload")]`. The same name may be asked for again with other labels:
    /// one metric, several series.
    pub fn histogram(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Histogram {
        let mut families = lock(&self.histograms);
        let family = families.entry(name.to_owned()).or_insert_with(|| {
            let family = HistogramFamily::new_with_constructor(latency_histogram);
            lock(&self.inner).register(name, help, family.clone());
            family
        });
        let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let series = family.get_or_create(&labels).clone();
        series
    }

    /// Runs `f` on the underlying `prometheus-client` registry, to register metrics made
    /// elsewhere (libp2p's, say).
    pub fn with_inner<T>(&self, f: impl FnOnce(&mut prometheus_client::registry::Registry) -> T) -> T {
        f(&mut lock(&self.inner))
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String does not fail.
        let _ = encode(&mut out, &lock(&self.inner));
        out
    }
}

/// The content type of [`Registry::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Serves `GET /metrics` on `addr` until the runtime stops; anything else is 404. Returns the
/// bound address (port 0: any free port).
pub async fn serve(registry: Arc<Registry>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    use axum::http::header::CONTENT_TYPE as CT;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let registry = registry.clone();
            async move { ([(CT, CONTENT_TYPE)], registry.render()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(target: "metrics", "metrics server stopped: {e}");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn renders_the_exposition_format_under_the_names_given() {
        let r = Registry::new();
        let g = r.gauge("qoin_head_height", "Height of the head.");
        let c = r.counter("qoin_sampling_failures_total", "Sampling mismatches.");
        let h = r.histogram("qoin_engine_call_seconds", "Engine call latency.", &[("method", "NewPayload")]);
        let h2 = r.histogram("qoin_engine_call_seconds", "Engine call latency.", &[("method", "GetPayload")]);
        g.set(42.0);
        c.inc();
        c.inc_by(2);
        observe(&h, Duration::from_micros(300));
        observe(&h, Duration::from_millis(2));
        observe(&h2, Duration::from_secs(20));
        let text = r.render();
        assert!(text.contains("# TYPE qoin_head_height gauge\nqoin_head_height 42.0\n"), "{text}");
        assert!(text.contains("qoin_sampling_failures_total 3\n"), "{text}");
        assert!(
            text.contains("qoin_engine_call_seconds_bucket{le=\"0.00025\",method=\"NewPayload\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("qoin_engine_call_seconds_bucket{le=\"0.0005\",method=\"NewPayload\"} 1\n"));
        assert!(text.contains("qoin_engine_call_seconds_bucket{le=\"+Inf\",method=\"NewPayload\"} 2\n"));
        assert!(text.contains("qoin_engine_call_seconds_count{method=\"NewPayload\"} 2\n"));
        assert!(text.contains("qoin_engine_call_seconds_bucket{le=\"10.0\",method=\"GetPayload\"} 0\n"));
        assert_eq!(
            text.matches("# TYPE qoin_engine_call_seconds histogram").count(),
            1,
            "one metric, two series"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let r = Arc::new(Registry::new());
        r.gauge("qoin_txpool_size", "Pooled transactions.").set(5.0);
        let addr = serve(r, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK") && ok.contains("qoin_txpool_size 5.0\n"), "{ok}");
        assert!(ok.contains("application/openmetrics-text"), "{ok}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
    }
}
