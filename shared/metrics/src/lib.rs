//! # qoin-metrics
//!
//! Owns the Prometheus metrics of Qoin's programs: a [`Registry`] of gauges, counters and
//! latency histograms (lock-free atomics, so the hot paths only add to a number), their
//! text exposition format (version 0.0.4), and [`serve`], a minimal HTTP server answering
//! `GET /metrics`. Small on purpose: no global state, every metric is registered once by
//! name with its help text, and a scrape renders them in registration order.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A value that goes up and down (stored as `f64` bits).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    /// Sets the value.
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }

    /// The value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// A count that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Bucket bounds of latency histograms, in seconds (100 µs to 10 s).
pub const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0];

/// A histogram of durations (cumulative buckets, sum and count, as Prometheus expects).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Self {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, bound) in self.buckets.iter().zip(self.bounds) {
            if secs <= *bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_micros.fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

enum Metric {
    Gauge(Arc<Gauge>),
    Counter(Arc<Counter>),
    Histogram(Arc<Histogram>),
}

/// A registered metric: name, help, labels, the value.
type Entry = (String, String, Vec<(String, String)>, Metric);

/// The metrics of one program, by name.
#[derive(Default)]
pub struct Registry {
    metrics: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Registry({} metrics)", self.metrics.lock().map_or(0, |m| m.len()))
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn add(&self, name: &str, help: &str, labels: &[(&str, &str)], m: Metric) {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        self.metrics.lock().unwrap_or_else(|e| e.into_inner()).push((name.into(), help.into(), labels, m));
    }

    /// Registers a gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Arc<Gauge> {
        let g = Arc::new(Gauge::default());
        self.add(name, help, &[], Metric::Gauge(g.clone()));
        g
    }

    /// Registers a counter (its name should end in `_total`).
    pub fn counter(&self, name: &str, help: &str) -> Arc<Counter> {
        let c = Arc::new(Counter::default());
        self.add(name, help, &[], Metric::Counter(c.clone()));
        c
    }

    /// Registers a latency histogram with `labels` (e.g. `[("method", "NewPayload")]`); the
    /// same name may be registered again with other labels.
    pub fn histogram(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Arc<Histogram> {
        let h = Arc::new(Histogram::new(&LATENCY_BUCKETS));
        self.add(name, help, labels, Metric::Histogram(h.clone()));
        h
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let metrics = self.metrics.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        let mut described = std::collections::HashSet::new();
        for (name, help, labels, m) in metrics.iter() {
            let kind = match m {
                Metric::Gauge(_) => "gauge",
                Metric::Counter(_) => "counter",
                Metric::Histogram(_) => "histogram",
            };
            if described.insert(name.clone()) {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            }
            let label_text = |extra: Option<String>| {
                let mut parts: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
                parts.extend(extra);
                if parts.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", parts.join(","))
                }
            };
            match m {
                Metric::Gauge(g) => {
                    let _ = writeln!(out, "{name}{} {}", label_text(None), g.get());
                }
                Metric::Counter(c) => {
                    let _ = writeln!(out, "{name}{} {}", label_text(None), c.get());
                }
                Metric::Histogram(h) => {
                    for (b, bound) in h.buckets.iter().zip(h.bounds) {
                        let le = Some(format!("le=\"{bound}\""));
                        let _ =
                            writeln!(out, "{name}_bucket{} {}", label_text(le), b.load(Ordering::Relaxed));
                    }
                    let count = h.count.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{name}_bucket{} {count}", label_text(Some("le=\"+Inf\"".into())));
                    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
                    let _ = writeln!(out, "{name}_sum{} {sum}", label_text(None));
                    let _ = writeln!(out, "{name}_count{} {count}", label_text(None));
                }
            }
        }
        out
    }
}

/// Serves `GET /metrics` (anything else: 404) on `addr` until the runtime stops. Returns the
/// bound address (port 0: any free port).
pub async fn serve(registry: Arc<Registry>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { continue };
            let registry = registry.clone();
            tokio::spawn(async move {
                // Read the request head (up to 8 KiB, 5 s), which may arrive in pieces.
                let mut buf = Vec::with_capacity(1024);
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    match tokio::time::timeout(Duration::from_secs(5), socket.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let request = String::from_utf8_lossy(&buf);
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let (status, ctype, body) =
                    if request.starts_with("GET ") && (path == "/metrics" || path.starts_with("/metrics?")) {
                        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", registry.render())
                    } else {
                        ("404 Not Found", "text/plain", "only GET /metrics is served here\n".to_string())
                    };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(body.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_exposition_format() {
        let r = Registry::new();
        let g = r.gauge("qoin_head_height", "Height of the head.");
        let c = r.counter("qoin_sampling_failures_total", "Sampling mismatches.");
        let h = r.histogram("qoin_engine_call_seconds", "Engine call latency.", &[("method", "NewPayload")]);
        g.set(42.0);
        c.inc();
        c.add(2);
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_millis(2));
        let text = r.render();
        assert!(text.contains("# TYPE qoin_head_height gauge\nqoin_head_height 42\n"), "{text}");
        assert!(text.contains("qoin_sampling_failures_total 3\n"));
        assert!(text.contains("qoin_engine_call_seconds_bucket{method=\"NewPayload\",le=\"0.00025\"} 0\n"));
        assert!(text.contains("qoin_engine_call_seconds_bucket{method=\"NewPayload\",le=\"0.0005\"} 1\n"));
        assert!(text.contains("qoin_engine_call_seconds_bucket{method=\"NewPayload\",le=\"+Inf\"} 2\n"));
        assert!(text.contains("qoin_engine_call_seconds_count{method=\"NewPayload\"} 2\n"));
        assert!(text.contains("qoin_engine_call_seconds_sum{method=\"NewPayload\"} 0.0023\n"), "{text}");
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        let r = Arc::new(Registry::new());
        r.gauge("qoin_txpool_size", "Pooled transactions.").set(5.0);
        let addr = serve(r, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200 OK") && ok.ends_with("qoin_txpool_size 5\n"), "{ok}");
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
    }
}
