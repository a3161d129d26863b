//! Network namespaces for `qoin-testnet up --links netns` (the default where it can run): each
//! node's two programs in a namespace of their own, one address per node, and partitions made
//! by the kernel's packet filter, so a cut link is silent as a real one is.
//!
//! Layout for a network tagged `T` on the subnet `10.213.K.0/24`:
//!
//! ```text
//!  host (root namespace)       qoin-T-hub                  qoin-T-nI (one per node)
//!  qoinT 10.213.K.1/24 ─veth─ host ┐                    ┌─ eth0 10.213.K.(10+I)/24, lo
//!                                  br0 (bridge) ── nI ─veth┘
//! ```
//!
//! The bridge lives in a namespace of its own, so the host's firewall (a Docker host's FORWARD
//! policy, for one) never sees node-to-node traffic; the host reaches every node's JSON-RPC
//! and metrics through its one veth. Inside a node's namespace the engine API stays on
//! 127.0.0.1, between that node's two programs only. `partition` loads into each node's
//! namespace an nftables table that drops everything to and from the other groups' addresses
//! (input and output); `heal` deletes it. Nothing outside these namespaces is touched but the
//! host's one veth, which goes away with them.
//!
//! Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), iproute2's `ip` and nftables' `nft`.

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The nftables table a partition loads into a node's namespace.
const TABLE: &str = "qoin_testnet";

/// Most nodes one subnet holds (addresses .10 to .254).
pub(crate) const MAX_NODES: usize = 245;

/// The namespaces of one network, recorded in `network.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Layout {
    /// Eight hex digits naming this network's namespaces and host link.
    pub(crate) tag: String,
    /// K of `10.213.K.0/24`.
    pub(crate) subnet: u8,
    /// Node namespaces created (node I is `qoin-T-nI`).
    pub(crate) nodes: usize,
}

impl Layout {
    fn hub(&self) -> String {
        format!("qoin-{}-hub", self.tag)
    }

    /// The namespace of node `i`.
    pub(crate) fn node(&self, i: usize) -> String {
        format!("qoin-{}-n{i}", self.tag)
    }

    /// The address of node `i`.
    pub(crate) fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, u8::try_from(10 + i).unwrap_or(u8::MAX))
    }

    fn host_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.subnet, 1)
    }

    /// The host's end of the link to the hub (at most 15 characters, as Linux wants).
    fn host_link(&self) -> String {
        format!("qoin{}", self.tag)
    }

    /// The command prefix that runs a program in node `i`'s namespace (`ip netns exec` execs
    /// it: the pid started is the program's).
    pub(crate) fn exec(&self, i: usize) -> anyhow::Result<Vec<String>> {
        Ok(vec![tool("ip")?.display().to_string(), "netns".into(), "exec".into(), self.node(i)])
    }
}

/// A system program, looked up on PATH and then in the sbin directories (root's tools).
fn tool(name: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .with_context(|| format!("`{name}` not found on PATH or in /usr/sbin, /sbin"))
}

/// Runs a system program; its error output is the error.
fn run(program: &str, args: &[&str], input: Option<&str>) -> anyhow::Result<()> {
    let mut cmd = Command::new(tool(program)?);
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().with_context(|| format!("cannot run {program}"))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        use std::io::Write as _;
        stdin.write_all(text.as_bytes()).with_context(|| format!("cannot feed {program}"))?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("`{program} {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args, None)
}

/// Why namespaces cannot be used here, if they cannot: not root, a tool missing, or the
/// kernel or container refusing to create one (tried with a namespace created and deleted).
pub(crate) fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".into());
    }
    for t in ["ip", "nft"] {
        if let Err(e) = tool(t) {
            return Some(format!("{e} (Debian: iproute2, nftables)"));
        }
    }
    let probe = format!("qoin-probe-{}", std::process::id());
    if let Err(e) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {e:#}"));
    }
    let nft = tool("nft").and_then(|nft| {
        run("ip", &["netns", "exec", &probe, &nft.display().to_string(), "list", "tables"], None)
    });
    let _ = ip(&["netns", "del", &probe]);
    nft.err().map(|e| format!("nftables does not work in a namespace: {e:#}"))
}

/// A subnet `10.213.K.0/24` that no address of this host is in, starting from `seed`.
fn free_subnet(seed: u8) -> anyhow::Result<u8> {
    let out = Command::new(tool("ip")?).args(["-o", "-4", "addr", "show"]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    (0..=255u16)
        .map(|k| seed.wrapping_add(k as u8))
        .find(|k| !text.contains(&format!(" 10.213.{k}.")))
        .context("every 10.213.K.0/24 is in use on this host")
}

/// Creates the hub, the host link and one namespace per node. On an error, what was created is
/// removed again.
pub(crate) fn create(nodes: usize) -> anyhow::Result<Layout> {
    if nodes > MAX_NODES {
        bail!("--nodes {nodes}: one namespace network holds at most {MAX_NODES} (use --links loopback)");
    }
    use std::hash::BuildHasher as _;
    let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let tag = format!("{:08x}", random as u32);
    let layout = Layout { tag, subnet: free_subnet((random >> 32) as u8)?, nodes };
    if let Err(e) = build(&layout) {
        destroy(&layout);
        return Err(e);
    }
    Ok(layout)
}

fn build(l: &Layout) -> anyhow::Result<()> {
    let hub = l.hub();
    let host = l.host_link();
    ip(&["netns", "add", &hub])?;
    ip(&["-n", &hub, "link", "set", "lo", "up"])?;
    ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", &hub, "link", "set", "br0", "up"])?;
    ip(&["link", "add", &host, "type", "veth", "peer", "name", "host", "netns", &hub])?;
    ip(&["-n", &hub, "link", "set", "host", "master", "br0", "up"])?;
    ip(&["addr", "add", &format!("{}/24", l.host_ip()), "dev", &host])?;
    ip(&["link", "set", &host, "up"])?;
    for i in 0..l.nodes {
        let ns = l.node(i);
        let port = format!("n{i}");
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &hub, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["-n", &hub, "link", "set", &port, "master", "br0", "up"])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", l.ip(i)), "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// Removes the namespaces (their links go with them, the host's included). Best effort: what
/// is already gone is not an error.
pub(crate) fn destroy(l: &Layout) {
    for ns in (0..l.nodes).map(|i| l.node(i)).chain([l.hub()]) {
        if let Err(e) = ip(&["netns", "del", &ns]) {
            let text = format!("{e:#}");
            if !text.contains("No such file") {
                tracing::warn!(target: qoin_tracing::targets::TESTNET, "{text}");
            }
        }
    }
}

/// Whether node `i`'s namespace exists.
pub(crate) fn exists(l: &Layout, i: usize) -> bool {
    std::path::Path::new("/run/netns").join(l.node(i)).exists()
}

/// Drops all traffic between node `i` and `cut` (both directions), replacing any earlier cut;
/// an empty `cut` removes it.
pub(crate) fn cut(l: &Layout, i: usize, cut: &[Ipv4Addr]) -> anyhow::Result<()> {
    // Declaring the table first makes the delete valid whether or not it existed: one atomic
    // transaction either way.
    let mut rules = format!("table inet {TABLE}\ndelete table inet {TABLE}\n");
    if !cut.is_empty() {
        let set: Vec<String> = cut.iter().map(Ipv4Addr::to_string).collect();
        let set = set.join(", ");
        rules.push_str(&format!(
            "table inet {TABLE} {{\n\
             \tchain input {{ type filter hook input priority filter; policy accept; ip saddr {{ {set} }} drop; }}\n\
             \tchain output {{ type filter hook output priority filter; policy accept; ip daddr {{ {set} }} drop; }}\n\
             }}\n"
        ));
    }
    let nft = tool("nft")?.display().to_string();
    run("ip", &["netns", "exec", &l.node(i), &nft, "-f", "-"], Some(&rules))
        .with_context(|| format!("cannot set the packet filter of {}", l.node(i)))
}
