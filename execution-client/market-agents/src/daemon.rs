//! What the daemons share: the HTTP server started beside the chain loop, the loop itself
//! (a tick per new head), and the jobs' files of the compute daemons opened with their state.

use crate::disk::load_json;
use crate::job_store::{Expected, JobStore};
use crate::node::Node;
use anyhow::Context as _;
use qoin_tracing::targets::MARKET;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tracing::warn;

/// Binds `listen` and serves `app` in the background.
pub async fn serve(listen: SocketAddr, app: axum::Router) -> anyhow::Result<()> {
    let listener =
        tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            warn!(target: MARKET, "the HTTP server stopped: {e}");
        }
    });
    Ok(())
}

/// Most bytes read and dropped from an upload refused before its body was read.
const DRAIN: usize = 64 << 20;

/// Reads and drops an upload refused before its body was read (up to [`DRAIN`] bytes, none
/// kept), so that a client still sending it reads the refusal rather than a broken
/// connection.
pub async fn drain(body: axum::body::Body) {
    use futures::StreamExt as _;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        seen += chunk.len();
        if seen > DRAIN {
            break;
        }
    }
}

/// Whether an upload's declared length (`content-length`) is above `max`.
pub fn declared_above(headers: &axum::http::HeaderMap, max: u64) -> bool {
    let declared =
        headers.get(axum::http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    declared.is_some_and(|n| n > max)
}

/// An upload's body, at most `max` bytes: `413` when its declared length is above that
/// (before a byte is read) or more comes; `400` when it cannot be read (cut short).
pub async fn read_body(
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
    max: usize,
) -> Result<axum::body::Bytes, (axum::http::StatusCode, String)> {
    use axum::http::StatusCode;
    if declared_above(&headers, max as u64) {
        drain(body).await;
        return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("at most {max} bytes are taken")));
    }
    axum::body::to_bytes(body, max).await.map_err(|e| {
        let too_long = e.to_string().contains("length limit")
            || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("length limit"));
        if too_long {
            (StatusCode::PAYLOAD_TOO_LARGE, format!("at most {max} bytes are taken"))
        } else {
            (StatusCode::BAD_REQUEST, format!("the upload could not be read (cut short?): {e}"))
        }
    })
}

/// A daemon that does its work once per new head.
pub trait Daemon {
    /// Its node.
    fn node(&self) -> &Node;
    /// One round of work at the head (its errors are logged; the next head tries again).
    fn tick(&mut self) -> impl Future<Output = anyhow::Result<()>>;
}

/// Runs `daemon`'s ticks, one per new head (or per second without one), until the process
/// is stopped or the node is lost.
pub async fn follow(daemon: &mut impl Daemon) -> anyhow::Result<()> {
    let mut heads = daemon.node().heads().await?;
    loop {
        if let Err(e) = daemon.tick().await {
            warn!(target: MARKET, "{e:#}");
        }
        daemon.node().next_head(&mut heads).await?;
    }
}

/// A compute daemon's saved state (`datadir/state.json`) and its jobs' files, expecting
/// uploads again for the jobs `expected` lists from that state.
pub fn open_jobs<T: DeserializeOwned + Default>(
    datadir: &Path,
    max_input: u64,
    expected: impl Fn(&T) -> Vec<(u64, Expected)>,
) -> anyhow::Result<(T, Arc<JobStore>)> {
    std::fs::create_dir_all(datadir).with_context(|| format!("creating {}", datadir.display()))?;
    let state: T = load_json(&datadir.join("state.json"))?;
    let store = Arc::new(JobStore::new(datadir, max_input));
    for (job, e) in expected(&state) {
        store.expect(job, e);
    }
    Ok((state, store))
}

#[cfg(test)]
mod tests {
    use super::read_body;
    use axum::http::{HeaderMap, StatusCode};

    #[tokio::test]
    async fn an_upload_is_read_up_to_its_limit_and_no_further() {
        let ok = read_body(HeaderMap::new(), axum::body::Body::from(vec![7u8; 10]), 10).await.unwrap();
        assert_eq!(ok.len(), 10);
        let long = read_body(HeaderMap::new(), axum::body::Body::from(vec![7u8; 11]), 10).await.unwrap_err();
        assert_eq!(long.0, StatusCode::PAYLOAD_TOO_LARGE, "{}", long.1);
        let mut declared = HeaderMap::new();
        declared.insert("content-length", "1000000000".parse().unwrap());
        let big = read_body(declared, axum::body::Body::empty(), 10).await.unwrap_err();
        assert_eq!(big.0, StatusCode::PAYLOAD_TOO_LARGE, "refused on its declared length");
    }
}
