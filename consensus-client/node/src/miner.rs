//! The miner: a payload from the execution client on the fork-choice head, a header with
//! up to four siblings of its parent and the rewards as credits, the proof-of-work search on
//! the fastest solver, restarted when new transactions make a block that pays more (checked at
//! most every `--miner.recommit`) or the head moves; and
//! [`run`], the consensus client's main loop.

use crate::config::{now_ms, Config, MinerConfig, MinerPriority};
use crate::metrics::ClMetrics;
use crate::node::{timed, ImportError, Node};
use crate::p2p::P2p;
use alloy_primitives::{Address, U256};
use anyhow::Context as _;
use qoin_cl_network::GossipBlock;
use qoin_consensus::params::prev_randao;
use qoin_consensus::validate::BlockMeta;
use qoin_crypto::Domain;
use qoin_engine_api::{Attributes, EngineClient, EngineError, Payload, Status};
use qoin_kernels::{SealError, Solver};
use qoin_pow::Difficulty;
use qoin_primitives::{Header, MAX_SIBLINGS};
use qoin_tracing::targets;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_stream::StreamExt as _;

impl Node {
    /// Up to four valid siblings of `parent` to reference (the oldest first).
    fn choose_siblings(&self, parent: &BlockMeta) -> Vec<BlockMeta> {
        let mut s: Vec<BlockMeta> = self
            .store
            .tree()
            .siblings_of(&parent.hash)
            .iter()
            .filter_map(|h| self.store.meta(h).cloned())
            .collect();
        s.sort_by_key(|m| (m.timestamp_ms, m.hash));
        s.truncate(MAX_SIBLINGS);
        s
    }

    /// Whether a block being mined on could name more siblings of its parent than it does.
    fn new_sibling_for(&self, header: &Header) -> bool {
        header.siblings.len() < MAX_SIBLINGS
            && self.store.meta(&header.parent_hash).is_some_and(|parent| {
                self.choose_siblings(parent).iter().any(|s| !header.siblings.contains(&s.hash))
            })
    }

    /// Asks the execution client for a payload on the head and makes the unsealed header.
    async fn prepare(&self, miner: &MinerConfig) -> Result<(Header, Payload, U256), ImportError> {
        let parent = self.head_meta()?;
        let siblings = self.choose_siblings(&parent);
        let height = parent.height + 1;
        let timestamp_ms = now_ms().max(parent.timestamp_ms + 1);
        let sibling_coinbases: Vec<Address> = siblings.iter().map(|s| s.coinbase).collect();
        let attrs = Attributes {
            timestamp_ms,
            fee_recipient: miner.coinbase,
            credits: self.params.credits(height, miner.coinbase, &sibling_coinbases),
            prev_randao: prev_randao(&parent.hash),
        };
        let (status, id) = timed(
            &self.metrics.forkchoice,
            self.engine.forkchoice_updated(parent.payload_hash, None, Some(&attrs)),
        )
        .await?;
        let Some(id) = id.filter(|_| status.status == Status::Valid) else {
            return Err(ImportError::Rejected(format!(
                "the execution client cannot build on the head: {status:?}"
            )));
        };
        let (payload, value) = timed(&self.metrics.get_payload, self.engine.get_payload(id)).await?;
        let txs: Vec<Vec<u8>> = payload.transactions.iter().map(|t| t.to_vec()).collect();
        let difficulty = self.params.child_difficulty(parent.height, parent.timestamp_ms);
        let mut header = Header {
            parent_hash: parent.hash,
            siblings: siblings.iter().map(|s| s.hash).collect(),
            height,
            timestamp_ms,
            difficulty: difficulty.to_compact(),
            payload_hash: payload.block_hash,
            state_root: payload.state_root,
            transactions_root: qoin_primitives::transactions_root(&txs).map_err(anyhow::Error::from)?,
            coinbase: miner.coinbase,
            miner_keys: miner.keypair.public().clone(),
            extra_nonce: 0,
            ticket: miner.keypair.sign(Domain::MiningTicket, b""),
            solution: [0; 16],
        };
        header.sign_ticket(&miner.keypair).map_err(anyhow::Error::from)?;
        Ok((header, payload, value))
    }
}

/// Follows the execution client's new transactions and wakes the miner.
fn spawn_tx_watch(engine: EngineClient, notify: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            if let Ok(mut stream) = engine.subscribe_transactions().await.map(Box::pin) {
                while let Some(Ok(_tx)) = stream.next().await {
                    notify.notify_one();
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
}

/// Runs the consensus client until `shutdown` resolves.
pub async fn run(
    config: Config,
    metrics: Arc<ClMetrics>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut node = Node::start(&config, metrics.clone()).await?;
    let mut p2p = match &config.p2p {
        Some(o) => {
            let network = qoin_cl_network::NetworkConfig {
                key_path: config.datadir.join("p2p").join("node.key"),
                listen: o.listen.clone(),
                bootnodes: o.bootnodes.clone(),
                max_inbound: o.max_inbound,
                max_outbound: o.max_outbound,
                chain_id: node.params.chain_id,
                genesis_hash: node.params.genesis_hash,
                deny_file: o.deny_file.clone(),
                inbound_delay: o.inbound_delay,
            };
            Some(P2p::start(&network, &node).await?)
        }
        None => None,
    };
    tokio::pin!(shutdown);
    let notify = Arc::new(Notify::new());
    spawn_tx_watch(node.engine.clone(), notify.clone());
    let (solver, pool) = match &config.miner {
        Some(m) => {
            let (solver, line) = qoin_kernels::choose();
            tracing::info!(
                target: targets::MINER,
                "{line}; {} search threads at {} priority; mining to {:#x}",
                m.threads,
                match m.priority {
                    MinerPriority::Idle => "idle",
                    MinerPriority::Normal => "normal",
                },
                m.coinbase
            );
            let priority = m.priority;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(m.threads.max(1))
                .thread_name(|i| format!("qoin-mq-{i}"))
                .start_handler(move |_| set_search_priority(priority))
                .build()
                .context("cannot start the search threads")?;
            (Some(Arc::<dyn Solver>::from(solver)), Some(Arc::new(pool)))
        }
        None => {
            tracing::info!(target: targets::MINER, "mining off: following the chain only");
            (None, None)
        }
    };
    let mut synced = false;
    let mut restart_from: Option<Instant> = None;
    // A better block prepared while the search ran (more fees), to search on next.
    let mut better: Option<(Header, Payload, U256)> = None;
    loop {
        if !synced {
            tokio::select! {
                r = node.sync_execution() => match r {
                    Ok(()) => {
                        synced = true;
                        let h = node.head_meta()?;
                        node.metrics.head_height.set(h.height as f64);
                        tracing::info!(target: targets::ENGINE, "execution client at head #{} {}", h.height, h.hash);
                    }
                    Err(EngineError::Transport(e)) => {
                        tracing::warn!(target: targets::ENGINE, "execution client unreachable ({e}); retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                            _ = &mut shutdown => break,
                        }
                        continue;
                    }
                    Err(e) => return Err(anyhow::anyhow!("cannot bring the execution client to the head: {e}")),
                },
                _ = &mut shutdown => break,
            }
        }
        let (Some(miner), Some(solver), Some(pool)) = (&config.miner, &solver, &pool) else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                Some(event) = P2p::next(&mut p2p) => {
                    if let Some(p) = &mut p2p {
                        p.handle(&mut node, event).await;
                    }
                    continue;
                }
                _ = &mut shutdown => break,
            }
        };
        // Far behind a peer: mining on this head would be wasted work; catch up first.
        if let Some(p) = &mut p2p {
            if p.far_behind(&node) {
                if !p.sync(&mut node).await {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = &mut shutdown => break,
                    }
                }
                continue;
            }
        }
        let prepared = match better.take() {
            Some(b) if b.0.parent_hash == node.store.head() => Ok(b),
            _ => tokio::select! {
                r = node.prepare(miner) => r,
                _ = &mut shutdown => break,
            },
        };
        let (header, payload, value) = match prepared {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(target: targets::MINER, "cannot prepare a block: {e}");
                if matches!(e, ImportError::Engine(EngineError::Transport(_))) {
                    synced = false;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if let Some(t) = restart_from.take() {
            qoin_metrics::observe(&node.metrics.miner_restart, t.elapsed());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let search = {
            let (solver, pool, stop, mut header) =
                (solver.clone(), pool.clone(), stop.clone(), header.clone());
            tokio::task::spawn_blocking(move || {
                let r = pool.install(|| qoin_kernels::seal(&mut header, solver.as_ref(), &stop));
                (header, r)
            })
        };
        tokio::pin!(search);
        let mut stopping = false;
        // New transactions: rebuild no sooner than `recommit` after this search started, and
        // restart only if the rebuilt block pays more (a trickle of transactions must not
        // keep the search from ever finishing).
        let mut recommit_at: Option<tokio::time::Instant> = None;
        let outcome = loop {
            tokio::select! {
                r = &mut search => break Some(r),
                _ = notify.notified(), if recommit_at.is_none() => {
                    recommit_at = Some(tokio::time::Instant::from_std(started + miner.recommit).max(tokio::time::Instant::now()));
                }
                _ = tokio::time::sleep_until(recommit_at.unwrap_or_else(tokio::time::Instant::now)), if recommit_at.is_some() => {
                    recommit_at = None;
                    match node.prepare(miner).await {
                        Ok(b) if b.2 > value && b.0.parent_hash == header.parent_hash => {
                            node.metrics.payload_rebuilds.inc();
                            better = Some(b);
                            break None;
                        }
                        Ok(_) => {}
                        Err(e) => tracing::debug!(target: targets::MINER, "cannot rebuild the block: {e}"),
                    }
                }
                Some(event) = P2p::next(&mut p2p) => {
                    // A peer's block that moved the head: search on the new head instead. One
                    // that is a new sibling of our parent: search again naming it too (its
                    // miner is paid its share, and its work counts instead of being lost).
                    if let Some(p) = &mut p2p {
                        if p.handle(&mut node, event).await
                            && (node.store.head() != header.parent_hash || node.new_sibling_for(&header))
                        {
                            break None;
                        }
                    }
                }
                _ = &mut shutdown => {
                    stopping = true;
                    break None;
                }
            }
        };
        if stopping {
            stop.store(true, Ordering::SeqCst);
            let _ = search.await;
            break;
        }
        let Some(joined) = outcome else {
            // A better payload, or a new head. Stop and search on it.
            restart_from = Some(Instant::now());
            stop.store(true, Ordering::SeqCst);
            let _ = search.await;
            continue;
        };
        let (sealed_header, result) = joined.context("search task failed")?;
        let sealed = match result {
            Ok(s) => s,
            Err(SealError::Cancelled) => continue,
            Err(e) => {
                tracing::error!(target: targets::MINER, "sealing failed: {e}");
                continue;
            }
        };
        let elapsed = started.elapsed();
        node.metrics.hash_rate.set(sealed.candidates as f64 / elapsed.as_secs_f64().max(1e-6));
        let hash = sealed_header.hash().map_err(anyhow::Error::from)?;
        match node.import(&sealed_header, &payload).await {
            Ok(()) => {
                node.metrics.blocks_mined.inc();
                let d = Difficulty::from_compact(sealed_header.difficulty)
                    .map(|d| d.to_string())
                    .unwrap_or_default();
                tracing::info!(
                    target: targets::MINER,
                    number = sealed_header.height,
                    hash = %hash,
                    txs = payload.transactions.len(),
                    difficulty = %d,
                    search_ms = (elapsed.as_secs_f64() * 1000.0).round(),
                    rate = %format_args!("{:.2e}", sealed.candidates as f64 / elapsed.as_secs_f64().max(1e-6)),
                    siblings = sealed_header.siblings.len(),
                    payload = %payload.block_hash,
                    sibling_hashes = %sealed_header.siblings.iter().map(|h| h.to_string()).collect::<Vec<_>>().join(","),
                    "mined block"
                );
                if let Some(p) = &p2p {
                    p.update_status(&node);
                    p.publish(GossipBlock { header: sealed_header.clone(), payload: payload.clone() }).await;
                }
            }
            Err(ImportError::Engine(EngineError::Transport(e))) => {
                tracing::warn!(target: targets::ENGINE, "execution client unreachable while importing #{} ({e})", sealed_header.height);
                synced = false;
            }
            Err(e) => {
                tracing::warn!(target: targets::MINER, "mined block #{} {hash} not imported: {e}", sealed_header.height)
            }
        }
    }
    tracing::info!(target: targets::NODE, "stopped");
    Ok(())
}

/// Puts the calling search thread at `priority`. On Linux, [`MinerPriority::Idle`] is
/// `SCHED_IDLE`: the thread runs only on a core nothing else wants.
#[cfg(target_os = "linux")]
fn set_search_priority(priority: MinerPriority) {
    if priority != MinerPriority::Idle {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler reads `param`, which lives across the call; pid 0 names the
    // calling thread. A failure leaves the policy as it was, and is logged.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) };
    if rc != 0 {
        tracing::warn!(
            target: targets::MINER,
            "cannot lower the search thread to idle priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Elsewhere the search threads keep the default policy.
#[cfg(not(target_os = "linux"))]
fn set_search_priority(_: MinerPriority) {}
