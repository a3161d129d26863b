//! The `qoin-el account` commands, run as a validator would run them.

use std::path::Path;
use std::process::{Command, Output};

fn el(datadir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qoin-el")).arg("--datadir").arg(datadir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn new_list_show_import() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let pw = pw.to_str().unwrap();

    let empty = el(dir.path(), &["account", "list"]);
    assert!(empty.status.success());
    assert!(String::from_utf8_lossy(&empty.stderr).contains("No accounts"));

    let created = el(dir.path(), &["account", "new", "--password-file", pw, "--light-kdf"]);
    assert!(created.status.success(), "{created:?}");
    let out = stdout(&created);
    let address = out.lines().next().unwrap().strip_prefix("New account: ").unwrap().to_string();
    assert_eq!(address.len(), 42);

    // Import the spec's test-vector seed: its address is fixed.
    let seed = dir.path().join("seed");
    std::fs::write(&seed, "01".repeat(32)).unwrap();
    let imported =
        el(dir.path(), &["account", "import", seed.to_str().unwrap(), "--password-file", pw, "--light-kdf"]);
    assert!(imported.status.success(), "{imported:?}");
    assert!(stdout(&imported).contains("0x96827940d45cffdc28a3ab3d27965680e74c8c26"));

    let listed = stdout(&el(dir.path(), &["account", "list"]));
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains(&address) && listed.contains("0x96827940d45cffdc28a3ab3d27965680e74c8c26"));

    let shown = el(dir.path(), &["account", "show", &address, "--unlock", "--password-file", pw]);
    assert!(shown.status.success(), "{shown:?}");
    let s = stdout(&shown);
    assert!(s.contains(&format!("Address:   {address}")) && s.contains("Unlocked:  yes"), "{s}");
    assert!(s.contains("Falcon-512 public key: 0x09"), "{s}");

    std::fs::write(dir.path().join("bad"), "wrong\n").unwrap();
    let wrong = el(
        dir.path(),
        &[
            "account",
            "show",
            &address,
            "--unlock",
            "--password-file",
            dir.path().join("bad").to_str().unwrap(),
        ],
    );
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong password"), "{wrong:?}");

    let missing = el(dir.path(), &["account", "show", "0x0000000000000000000000000000000000000001"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not in"), "{missing:?}");
}

#[test]
fn node_unlocks_keystore_accounts_for_eth_send_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let pw = pw.to_str().unwrap();
    let created = el(dir.path(), &["account", "new", "--password-file", pw, "--light-kdf"]);
    let address = stdout(&created).lines().next().unwrap().strip_prefix("New account: ").unwrap().to_string();

    // A wrong password stops the node at start, saying which account.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let refused = el(
        dir.path(),
        &[
            "node",
            "--dev",
            "--http.port",
            "0",
            "--unlock",
            &address,
            "--password-file",
            wrong.to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains(&format!("cannot unlock {address}")), "{err}");

    let node = crate::rpc::Node::start_with(dir.path(), &["--unlock", &address, "--password-file", pw]);
    let accounts = node.ok("eth_accounts", serde_json::json!([]));
    assert_eq!(accounts.as_array().unwrap().len(), 11, "{accounts}");
    assert_eq!(accounts[10], serde_json::json!(address));
    // Fund it with one QOIN (`parseEther("1")`) from a dev account, then it sends with its own key.
    let dev0 = accounts[0].clone();
    let fund = node.ok(
        "eth_sendTransaction",
        serde_json::json!([{"from": dev0, "to": address, "value": "0xde0b6b3a7640000"}]),
    );
    assert!(fund.is_string());
    let sent =
        node.ok("eth_sendTransaction", serde_json::json!([{"from": address, "to": dev0, "value": "0x1"}]));
    assert!(sent.is_string());
    assert_eq!(node.ok("eth_getTransactionCount", serde_json::json!([address, "latest"])), "0x1");
}

#[test]
fn unlocked_accounts_and_the_engine_api_stay_off_public_addresses_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // Dev accounts on every interface: refused before anything listens.
    let o = el(
        dir.path(),
        &["node", "--dev", "--http.addr", "0.0.0.0", "--http.port", "0", "--authrpc.port", "0"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--allow-insecure-unlock"), "{}", stderr(&o));
    // The engine API on every interface: refused unless allowed.
    let o = el(
        dir.path(),
        &["node", "--dev", "--http.port", "0", "--authrpc.addr", "0.0.0.0", "--authrpc.port", "0"],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--authrpc.allow-remote"), "{}", stderr(&o));
}
