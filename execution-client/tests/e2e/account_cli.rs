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
