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
