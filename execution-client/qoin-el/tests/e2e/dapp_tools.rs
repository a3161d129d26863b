//! The dapp tools, unchanged, against `qoin-el node --dev`:
//! - ethers 6 and viem 2: deploy the solc-compiled contract through the node's unlocked
//!   account, call it, decode a revert reason and a custom error, query its events
//!   (`tests/dapp-tools/check.mjs`);
//! - Foundry 1.7.1 (`cast`, `forge` from npm, compiling offline through the npm solc package,
//!   `tests/dapp-tools/foundry`): `cast send --unlocked`, `cast tx`, `cast receipt`,
//!   `cast run`, `forge create --unlocked --broadcast`, `forge script --broadcast --unlocked`;
//! - Hardhat 3 (`tests/dapp-tools/hardhat`, on the npm `node` package's Node.js 22, `accounts:
//!   "remote"`, the npm solc): deploy, calls, revert reasons, custom errors, events, and the
//!   network helpers (`loadFixture`, `time`, `mine`, `setBalance` / `setNonce` / `setCode` /
//!   `setStorageAt`, `takeSnapshot`) over the dev-node methods;
//! - qoin-js (`shared/qoin-js`, `tests/dapp-tools/qoin-js.mjs`): a viem Account and an ethers
//!   Signer on post-quantum keys, keystore files shared with `qoin-el account` both ways.
//!
//! The lockfile lists EDR's (Hardhat's EVM) native packages for other platforms without
//! tarballs: the registry this is installed from may not serve them, and `npm ci` only needs
//! them listed to skip them.
//!
//! Needs Node.js, `npm ci` in `shared/qoin-js` (which builds it) and then in
//! `tests/dapp-tools`; CI does these and sets
//! `QOIN_DAPP_TOOLS=1`, which makes a missing setup a failure instead of a skip.

use crate::rpc::Node;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/dapp-tools` when Node.js and its `node_modules` (with `needs`) are there; `None` to
/// skip, or a failure when `QOIN_DAPP_TOOLS=1`.
fn tools(needs: &[&str]) -> Option<PathBuf> {
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dapp-tools");
    let required = std::env::var("QOIN_DAPP_TOOLS").is_ok_and(|v| v == "1");
    let node_ok = Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    let missing: Vec<&&str> = needs.iter().filter(|n| !tools.join("node_modules").join(n).exists()).collect();
    if !node_ok || !missing.is_empty() {
        assert!(
            !required,
            "QOIN_DAPP_TOOLS=1 but Node.js or {missing:?} in {}/node_modules is missing (run npm ci)",
            tools.display()
        );
        eprintln!("skipped: needs Node.js and `npm ci` in {}", tools.display());
        return None;
    }
    Some(tools)
}

/// Runs a Foundry program in the Foundry project; its stdout, or a failure with both streams.
fn foundry(tools: &Path, scratch: &Path, program: &str, args: &[&str]) -> String {
    let bin = tools.join(format!("node_modules/@foundry-rs/{program}-linux-amd64/bin/{program}"));
    let out = Command::new(&bin)
        .args(args)
        .current_dir(tools.join("foundry"))
        // Build output, cache and broadcast logs go to the test's folder, not the repository.
        .env("FOUNDRY_OUT", scratch.join("out"))
        .env("FOUNDRY_CACHE_PATH", scratch.join("cache"))
        .env("FOUNDRY_BROADCAST", scratch.join("broadcast"))
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{program} {}:\n{stdout}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn parse(what: &str, text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
}

#[test]
fn foundry_sends_deploys_scripts_and_replays_unchanged() {
    let Some(tools) = tools(&["@foundry-rs/cast-linux-amd64", "@foundry-rs/forge-linux-amd64", "solc"])
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let url = format!("http://{}", node.addr);
    let scratch = tempfile::tempdir().unwrap();
    // `<program> <command> --rpc-url <node> <args>`, as a user types it.
    let run = |program: &str, command: &str, args: &[&str]| {
        foundry(&tools, scratch.path(), program, &[&[command, "--rpc-url", &url], args].concat())
    };
    let cast = |command: &str, args: &[&str]| run("cast", command, args);
    let dev0 = node.ok("eth_accounts", json!([]))[0].as_str().unwrap().to_string();
    let unlocked = ["--unlocked", "--from", &dev0];
    let payee = "0x000000000000000000000000000000000000dEaD";

    // cast send --unlocked: mined, and the receipt decodes (Foundry refused type 0x51).
    let sent =
        parse("cast send", &cast("send", &[&["--json", payee, "--value", "1ether"], &unlocked[..]].concat()));
    assert_eq!(sent["status"], "0x1", "{sent}");
    assert_eq!(sent["type"], "0x2", "the fee model's type; the envelope's is envelopeType");
    let hash = sent["transactionHash"].as_str().unwrap().to_string();
    assert_eq!(cast("balance", &["--ether", payee]).trim(), "1.000000000000000000");
    let tx = parse("cast tx", &cast("tx", &["--json", &hash]));
    assert_eq!(tx["hash"], json!(hash));
    assert_eq!(tx["from"].as_str().unwrap().to_lowercase(), dev0.to_lowercase());
    let receipt = parse("cast receipt", &cast("receipt", &["--json", &hash]));
    assert_eq!(receipt["gasUsed"], "0x5208");
    // cast run replays the block's transactions locally from the node's state and traces it.
    let replay = cast("run", &[&hash]);
    assert!(replay.contains("Transaction successfully executed"), "{replay}");

    // forge create --unlocked --broadcast: "Deployed to", and the contract answers.
    let create =
        [&unlocked[..], &["--json", "--broadcast", "src/Counter.sol:Counter", "--constructor-args", "5"]];
    let created = parse("forge create", &run("forge", "create", &create.concat()));
    let counter = created["deployedTo"].as_str().unwrap_or_else(|| panic!("{created}")).to_string();
    assert_eq!(cast("call", &[&counter, "count()(uint256)"]).trim(), "5");

    // forge script --broadcast --unlocked: both transactions sent, both receipts saved.
    run("forge", "script", &["script/Deploy.s.sol:Deploy", "--broadcast", "--unlocked", "--sender", &dev0]);
    let log = scratch.path().join("broadcast/Deploy.s.sol/1337/run-latest.json");
    let log = parse("broadcast log", &std::fs::read_to_string(&log).unwrap());
    let receipts = log["receipts"].as_array().unwrap();
    assert_eq!(receipts.len(), 2, "{log}");
    assert!(receipts.iter().all(|r| r["status"] == "0x1"), "{log}");
    let scripted = receipts[0]["contractAddress"].as_str().unwrap();
    assert_eq!(cast("call", &[scripted, "count()(uint256)"]).trim(), "12");
}

#[test]
fn ethers_and_viem_deploy_call_and_decode_reverts() {
    let Some(tools) = tools(&["ethers", "viem"]) else {
        return;
    };
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
        stdout.contains(
            "ethers: 18-decimal units, deploy, call, revert reason, custom error, events, contract.on: ok"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("viem: deploy, call, revert reason, custom error, events: ok"), "{stdout}");
    assert!(
        stdout.contains("websocket: viem watchBlockNumber, watchContractEvent, ethers block events: ok"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "signing: ethers signMessage / signTypedData, viem signMessage, recovered in a contract: ok"
        ),
        "{stdout}"
    );
}

/// qoin-js's own unit tests (`shared/qoin-js/test`): the spec's key, address and transaction
/// vectors, decoding of bad input, keystores, and the fixtures qoin-primitives cross-checks.
#[test]
fn qoin_js_unit_tests_pass() {
    let Some(tools) = tools(&["qoin-js/dist/index.js"]) else {
        return;
    };
    let package = tools.join("node_modules/qoin-js");
    let out = Command::new("node").arg("--test").arg("test/").current_dir(&package).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("# fail 0") && !stdout.contains("# pass 0"), "{stdout}");
}

/// qoin-js (`shared/qoin-js`): keys from a keystore `qoin-el account new` wrote and keys made
/// in JavaScript send type-0x51 transactions through viem and ethers; what the node signs
/// verifies in qoin-js; the JS-made keys' keystore opens in `qoin-el account show --unlock`.
#[test]
fn qoin_js_signs_for_viem_and_ethers_and_shares_keystores_with_qoin_el() {
    let Some(tools) = tools(&["ethers", "viem", "qoin-js/dist/index.js"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let el = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_qoin-el"))
            .arg("--datadir")
            .arg(dir.path().join("wallet"))
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "qoin-el {args:?}: {text}{}", String::from_utf8_lossy(&out.stderr));
        text
    };
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "js and rust\n").unwrap();
    let pw = pw.to_str().unwrap();
    let created = el(&["account", "new", "--password-file", pw, "--light-kdf"]);
    let address = created.lines().next().unwrap().strip_prefix("New account: ").unwrap().to_string();
    let keystore = dir.path().join("wallet/keystore").join(format!("qoin-{}.json", &address[2..]));
    let js_keystore = dir.path().join("js-keystore");
    std::fs::create_dir_all(&js_keystore).unwrap();

    let node = Node::start(&dir.path().join("node"));
    let out = Command::new("node")
        .arg(tools.join("qoin-js.mjs"))
        .arg(tools.join("../contracts/Counter.json"))
        .arg(format!("http://{}", node.addr))
        .arg(&keystore)
        .arg("js and rust")
        .arg(&js_keystore)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for line in [
        "qoin-el-signed transaction and message verified by qoin-js: ok",
        "viem: qoin-js account from a qoin-el keystore deploys, calls, sends: ok",
        "refused: wrong chain, broken signature, unfunded key: ok",
        "ethers: qoin-js signer with keys made in JS deploys, calls, sends; messages recovered in a contract: ok",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in {stdout}");
    }
    // The keys made in JavaScript open in qoin-el with the same address.
    let js_address = stdout.lines().find_map(|l| l.strip_prefix("js-account: ")).unwrap().to_lowercase();
    let ks = js_keystore.to_str().unwrap();
    let listed = el(&["--keystore", ks, "account", "list"]);
    assert!(listed.to_lowercase().contains(&js_address), "{listed}");
    let shown = el(&["--keystore", ks, "account", "show", &js_address, "--unlock", "--password-file", pw]);
    assert!(shown.to_lowercase().contains(&js_address), "{shown}");
}

#[test]
fn hardhat_deploys_calls_and_its_network_helpers_work_unchanged() {
    let Some(tools) = tools(&["hardhat", "@nomicfoundation/hardhat-network-helpers", "node/bin"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(dir.path());
    let scratch = tempfile::tempdir().unwrap();
    let bin = tools.join("node_modules/.bin");
    // Hardhat 3 needs Node.js >= 22.13: the npm `node` package's binary goes first on PATH.
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(bin.join("hardhat"))
        .args(["run", "scripts/check.ts", "--network", "qoin"])
        .current_dir(tools.join("hardhat"))
        .env("PATH", path)
        .env("QOIN_RPC", format!("http://{}", node.addr))
        .env("QOIN_HARDHAT_OUT", scratch.path())
        .env("HARDHAT_DISABLE_TELEMETRY_PROMPT", "true")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for step in [
        "ok fixture",
        "ok reverts + custom errors + events",
        "ok time + mining",
        "ok state edits",
        "ok snapshots",
        "hardhat: all checks passed",
    ] {
        assert!(stdout.contains(step), "missing {step:?}:\n{stdout}");
    }
}
