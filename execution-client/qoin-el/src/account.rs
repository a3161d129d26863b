//! `qoin-el account …`: keystore accounts on the command line.

use alloy_primitives::Address;
use anyhow::{bail, Context as _};
use qoin_crypto::keystore::{KdfParams, Keystore};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a password comes from.
#[derive(Debug, Clone)]
pub(crate) enum PasswordSource {
    /// The first line of a file (as geth's `--password`).
    File(PathBuf),
    /// Typed at the terminal, without echo.
    Prompt,
}

impl PasswordSource {
    /// Reads the password; `confirm` asks twice when prompting.
    pub(crate) fn read(&self, confirm: bool) -> anyhow::Result<String> {
        match self {
            Self::File(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read password file {}", path.display()))?;
                Ok(text.lines().next().unwrap_or("").to_string())
            }
            Self::Prompt => {
                let pw = rpassword::prompt_password("Password: ")
                    .context("cannot read a password from the terminal; pass --password-file")?;
                if confirm {
                    let again = rpassword::prompt_password("Repeat password: ")?;
                    if again != pw {
                        bail!("passwords do not match");
                    }
                }
                Ok(pw)
            }
        }
    }
}

/// Creates a new random account; returns its address.
pub(crate) fn new_account(ks: &Keystore, password: &str, kdf: KdfParams) -> anyhow::Result<Address> {
    if password.is_empty() {
        bail!("refusing an empty password");
    }
    Ok(ks.create(password.as_bytes(), kdf)?)
}

/// Imports an account from a file holding its 32-byte master seed as hex.
pub(crate) fn import_account(
    ks: &Keystore,
    seed_file: &Path,
    password: &str,
    kdf: KdfParams,
) -> anyhow::Result<Address> {
    let text = std::fs::read_to_string(seed_file)
        .with_context(|| format!("cannot read seed file {}", seed_file.display()))?;
    let hex_seed = text.trim().trim_start_matches("0x");
    let bytes = hex::decode(hex_seed).context("seed file must hold 64 hex digits")?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| anyhow::anyhow!("seed must be 32 bytes, the file holds {}", b.len()))?;
    Ok(ks.store(&seed, password.as_bytes(), kdf)?)
}

/// Writes one line per account: index, address, file.
pub(crate) fn list(ks: &Keystore, out: &mut impl Write) -> anyhow::Result<usize> {
    let entries = ks.list()?;
    for (i, (path, file)) in entries.iter().enumerate() {
        match file {
            Ok(f) => writeln!(out, "Account #{i}: {:#x} keystore:{}", f.address, path.display())?,
            Err(e) => writeln!(out, "Account #{i}: unreadable keystore:{}: {e}", path.display())?,
        }
    }
    Ok(entries.len())
}

/// Describes one account; with a password, also proves it unlocks and prints the public keys.
pub(crate) fn show(
    ks: &Keystore,
    address: &Address,
    password: Option<&str>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let path = ks.path_of(address);
    let file =
        ks.read(&path).with_context(|| format!("account {address:#x} is not in {}", ks.dir().display()))?;
    writeln!(out, "Address:   {:#x}", file.address)?;
    writeln!(out, "Keystore:  {}", path.display())?;
    writeln!(out, "Suite:     {}", qoin_crypto::Suite::from_byte(file.suite)?)?;
    let p = file.crypto.kdfparams;
    writeln!(out, "KDF:       argon2id m={} KiB t={} p={}", p.m_cost_kib, p.t_cost, p.p_cost)?;
    if let Some(pw) = password {
        let kp = ks.unlock(address, pw.as_bytes())?;
        let keys = kp.public();
        writeln!(out, "Unlocked:  yes")?;
        writeln!(out, "Key hash:  {:#x}", keys.hash())?;
        writeln!(out, "Falcon-512 public key: 0x{}", hex::encode(keys.falcon()))?;
        writeln!(out, "ML-DSA-44 public key:  0x{}", hex::encode(keys.mldsa()))?;
    }
    Ok(())
}
