//! The key a program signs with: a keystore account (`--keystore DIR --from ADDR
//! --password-file F`) or, on a dev chain, one of the ten deterministic dev accounts
//! (`--dev-account I`).

use alloy_primitives::Address;
use anyhow::{bail, Context as _};
use qoin_crypto::keystore::Keystore;
use qoin_crypto::Keypair;
use qoin_primitives::dev::{dev_seed, DEV_ACCOUNTS};
use qoin_primitives::{SignedTx, TxRequest};
use std::path::PathBuf;

/// Where the signing key comes from (flattened into each program's options).
#[derive(clap::Args, Debug, Clone)]
pub struct KeyArgs {
    /// Keystore directory holding the account given by --from.
    #[arg(long, requires = "from")]
    pub keystore: Option<PathBuf>,
    /// The account to sign with (its keystore file is in --keystore).
    #[arg(long)]
    pub from: Option<Address>,
    /// File whose first line is the keystore password (asked on the terminal without it).
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// On a dev chain: sign with dev account I (0-9) instead of a keystore.
    #[arg(long, conflicts_with_all = ["keystore", "from"])]
    pub dev_account: Option<u32>,
}

/// A signing key.
pub struct Wallet {
    key: Keypair,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("address", &self.address()).finish_non_exhaustive()
    }
}

impl Wallet {
    /// The key the options name.
    pub fn open(args: &KeyArgs) -> anyhow::Result<Self> {
        if let Some(i) = args.dev_account {
            return Self::dev(i);
        }
        let (Some(dir), Some(from)) = (&args.keystore, args.from) else {
            bail!("no key: pass --keystore DIR --from ADDRESS (or --dev-account I on a dev chain)");
        };
        let password = match &args.password_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading the password file {}", path.display()))?;
                text.lines().next().unwrap_or_default().to_string()
            }
            None => rpassword::prompt_password(format!("password for {from}: "))
                .context("reading the password from the terminal")?,
        };
        let key = Keystore::new(dir)
            .unlock(&from, password.as_bytes())
            .with_context(|| format!("unlocking {from} in {}", dir.display()))?;
        Ok(Self { key })
    }

    /// Dev account `i` (0-9) of the dev chain.
    pub fn dev(i: u32) -> anyhow::Result<Self> {
        if i >= DEV_ACCOUNTS {
            bail!("--dev-account {i}: the dev chain has accounts 0 to {}", DEV_ACCOUNTS - 1);
        }
        Ok(Self { key: Keypair::from_seed(&dev_seed(i)) })
    }

    /// The account's address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    /// Signs `tx` with both post-quantum keys.
    pub fn sign(&self, tx: TxRequest) -> SignedTx {
        tx.sign(&self.key)
    }
}
