//! ethers 6 and viem 2, unchanged, against `qoin-el node --dev`: deploy the solc-compiled
//! contract through the node's unlocked account, call it, decode a revert reason and a
//! custom error, query its events (`tests/dapp-tools/check.mjs`).
//!
//! Needs Node.js and `npm ci` in `tests/dapp-tools`; CI does both and sets
//! `QOIN_DAPP_TOOLS=1`, which makes a missing setup a failure instead of a skip.

use crate::rpc::Node;
use std::path::Path;
use std::process::Command;

#[test]
fn ethers_and_viem_deploy_call_and_decode_reverts() {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dapp-tools");
    let required = std::env::var("QOIN_DAPP_TOOLS").is_ok_and(|v| v == "1");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node_ok || !tools.join("node_modules/ethers").exists() || !tools.join("node_modules/viem").exists() {
        assert!(
            !required,
            "QOIN_DAPP_TOOLS=1 but Node.js or {}/node_modules is missing (run npm ci)",
            tools.display()
        );
        eprintln!("skipped: needs Node.js and `npm ci` in {}", tools.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let out = Command::new("node")
        .arg(tools.join("check.mjs"))
        .arg(tools.join("../contracts/Counter.json"))
        .arg(format!("http://{}", node.addr))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.contains("ethers: 18-decimal units, deploy, call, revert reason, custom error, events: ok"),
        "{stdout}"
    );
    assert!(stdout.contains("viem: deploy, call, revert reason, custom error, events: ok"), "{stdout}");
}
