//! The encrypted keystore file.
//!
//! A keystore holds one account's secret keys, encrypted under a password. Version 2 (what
//! is written) holds the 32-byte master seed (the ML-DSA keys are derived from it) followed
//! by the Falcon-512 secret key in its standard encoding (1,281 bytes), so keys made by any
//! Falcon generator load with their address, see [`Keypair::from_seed_and_falcon_key`].
//! Version 1 (still read) holds the seed alone, both keys derived from it
//! ([`Keypair::from_seed`]).
//!
//! - KDF: argon2id (v1.3) over the password and a 32-byte random salt gives 64 bytes;
//!   the first 32 are the encryption key, the last 32 the *check key*.
//! - `check = keccak256("QOIN/KEYSTORE-CHECK/v1" ‖ check_key)` is stored, so a wrong password
//!   is told apart from a damaged file.
//! - Cipher: XChaCha20-Poly1305 with a 24-byte random nonce; the associated data binds the
//!   file's address, suite and KDF parameters, so editing any of them is detected.
//!
//! Loading reports [`KeystoreError::Truncated`], [`KeystoreError::Malformed`],
//! [`KeystoreError::WrongPassword`] and [`KeystoreError::Tampered`] as distinct errors.

use crate::{keccak256, Keypair, Suite, SEED_LEN};
use alloy_primitives::Address;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The keystore format version written: 2 (seed and Falcon secret key). Version 1 (seed
/// only) is still read.
pub const KEYSTORE_VERSION: u32 = 2;
const CHECK_TAG: &[u8] = b"QOIN/KEYSTORE-CHECK/v1";
/// Falcon-512 secret key length in its standard encoding.
const FALCON_SK_LEN: usize = 1281;

/// Why a keystore could not be written or opened.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    /// The file ends before its JSON does.
    #[error("keystore file is truncated")]
    Truncated,
    /// The file is not a keystore of a known format.
    #[error("keystore file is malformed: {0}")]
    Malformed(String),
    /// The password does not open this keystore.
    #[error("wrong password for keystore")]
    WrongPassword,
    /// The password is right but the file was altered after it was written.
    #[error("keystore file has been tampered with: {0}")]
    Tampered(&'static str),
    /// Reading or writing the file failed.
    #[error("keystore I/O error on {path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Argon2id cost parameters, stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost_kib: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl KdfParams {
    /// Defaults for keys a validator keeps: 64 MiB, 3 passes, 1 lane (≈0.2 s here).
    pub const STANDARD: Self = Self { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 };
    /// Cheap parameters for throw-away development keys and tests (256 KiB, 1 pass).
    pub const LIGHT: Self = Self { m_cost_kib: 256, t_cost: 1, p_cost: 1 };

    /// Bounds a file may ask for: a hostile file must not make us allocate gigabytes.
    fn check(&self) -> Result<(), KeystoreError> {
        let ok = (8..=4 * 1024 * 1024).contains(&self.m_cost_kib)
            && (1..=64).contains(&self.t_cost)
            && (1..=16).contains(&self.p_cost)
            && self.m_cost_kib >= 8 * self.p_cost;
        if ok {
            Ok(())
        } else {
            Err(KeystoreError::Malformed(format!("KDF parameters out of range: {self:?}")))
        }
    }
}

/// The JSON layout of a keystore file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreFile {
    /// Format version ([`KEYSTORE_VERSION`]).
    pub version: u32,
    /// The account address, `0x`-prefixed hex.
    pub address: Address,
    /// Signature suite byte.
    pub suite: u8,
    /// Encryption details.
    pub crypto: CryptoSection,
}

/// The `crypto` object of a keystore file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoSection {
    /// Always `"argon2id"`.
    pub kdf: String,
    /// Argon2 costs.
    pub kdfparams: KdfParams,
    /// 32-byte salt, hex.
    pub salt: String,
    /// Always `"xchacha20-poly1305"`.
    pub cipher: String,
    /// 24-byte nonce, hex.
    pub nonce: String,
    /// Encrypted seed with its 16-byte tag, hex.
    pub ciphertext: String,
    /// Password check value, hex (see the module docs).
    pub check: String,
}

/// The associated data: binds the version, address, suite and KDF costs to the ciphertext.
fn aad(version: u32, address: &Address, suite: u8, p: &KdfParams) -> Vec<u8> {
    format!("QOIN/KEYSTORE/v{version}|{address:#x}|{suite}|{}|{}|{}", p.m_cost_kib, p.t_cost, p.p_cost)
        .into_bytes()
}

/// The plaintext length of a version's ciphertext (without the 16-byte tag).
fn plaintext_len(version: u32) -> usize {
    if version == 1 {
        SEED_LEN
    } else {
        SEED_LEN + FALCON_SK_LEN
    }
}

fn derive(password: &[u8], salt: &[u8], p: &KdfParams) -> Result<Zeroizing<[u8; 64]>, KeystoreError> {
    let params = argon2::Params::new(p.m_cost_kib, p.t_cost, p.p_cost, Some(64))
        .map_err(|e| KeystoreError::Malformed(format!("KDF parameters: {e}")))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 64]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(|e| KeystoreError::Malformed(format!("KDF: {e}")))?;
    Ok(out)
}

fn check_value(check_key: &[u8]) -> String {
    let mut m = CHECK_TAG.to_vec();
    m.extend_from_slice(check_key);
    hex::encode(keccak256(m))
}

fn random<const N: usize>() -> [u8; N] {
    use rand_core::RngCore as _;
    let mut b = [0u8; N];
    rand_core::OsRng.fill_bytes(&mut b);
    b
}

/// Encrypts the key pair of `seed` (§2.5 of the spec) under `password` and returns the
/// keystore contents (version 2).
pub fn encrypt(
    seed: &[u8; SEED_LEN],
    password: &[u8],
    params: KdfParams,
) -> Result<KeystoreFile, KeystoreError> {
    encrypt_keypair(&Keypair::from_seed(seed), seed, password, params)
}

/// Encrypts `keypair`, whose ML-DSA keys come from `seed`, under `password` (version 2: the
/// seed followed by the Falcon secret key).
fn encrypt_keypair(
    keypair: &Keypair,
    seed: &[u8; SEED_LEN],
    password: &[u8],
    params: KdfParams,
) -> Result<KeystoreFile, KeystoreError> {
    params.check()?;
    let address = keypair.address();
    let suite = keypair.public().suite().as_byte();
    let salt: [u8; 32] = random();
    let nonce: [u8; 24] = random();
    let key = derive(password, &salt, &params)?;
    let cipher = chacha20poly1305::XChaCha20Poly1305::new_from_slice(&key[..32])
        .map_err(|_| KeystoreError::Malformed("cipher key length".into()))?;
    let aad = aad(KEYSTORE_VERSION, &address, suite, &params);
    let mut plain = Zeroizing::new(Vec::with_capacity(plaintext_len(KEYSTORE_VERSION)));
    plain.extend_from_slice(seed);
    plain.extend_from_slice(keypair.falcon_secret_key());
    let ciphertext = cipher
        .encrypt(chacha20poly1305::XNonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
        .map_err(|_| KeystoreError::Malformed("encryption failed".into()))?;
    Ok(KeystoreFile {
        version: KEYSTORE_VERSION,
        address,
        suite,
        crypto: CryptoSection {
            kdf: "argon2id".into(),
            kdfparams: params,
            salt: hex::encode(salt),
            cipher: "xchacha20-poly1305".into(),
            nonce: hex::encode(nonce),
            ciphertext: hex::encode(ciphertext),
            check: check_value(&key[32..]),
        },
    })
}

fn hex_field<const N: usize>(name: &str, s: &str) -> Result<[u8; N], KeystoreError> {
    let v = hex::decode(s).map_err(|e| KeystoreError::Malformed(format!("{name}: {e}")))?;
    v.try_into()
        .map_err(|v: Vec<u8>| KeystoreError::Malformed(format!("{name} must be {N} bytes, got {}", v.len())))
}

impl KeystoreFile {
    /// Parses keystore JSON, telling a truncated file from a malformed one.
    pub fn parse(text: &str) -> Result<Self, KeystoreError> {
        let file: Self = serde_json::from_str(text).map_err(|e| {
            if e.is_eof() {
                KeystoreError::Truncated
            } else {
                KeystoreError::Malformed(e.to_string())
            }
        })?;
        if !(1..=KEYSTORE_VERSION).contains(&file.version) {
            return Err(KeystoreError::Malformed(format!("unsupported keystore version {}", file.version)));
        }
        Suite::supported(file.suite).map_err(|e| KeystoreError::Malformed(e.to_string()))?;
        if file.crypto.kdf != "argon2id" || file.crypto.cipher != "xchacha20-poly1305" {
            return Err(KeystoreError::Malformed(format!(
                "unsupported kdf/cipher {}/{}",
                file.crypto.kdf, file.crypto.cipher
            )));
        }
        file.crypto.kdfparams.check()?;
        Ok(file)
    }

    /// Pretty JSON, as written to disk.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| unreachable!("keystore serialises: {e}"))
    }

    /// Decrypts the secret keys and rebuilds the key pair, checking it matches the stored
    /// address. The seed is not answered on its own: in a version-2 file made elsewhere
    /// (qoin-js) the Falcon key does not come from it, so `Keypair::from_seed` of it would be
    /// another account; the file (or [`encrypt`] of the key pair) is what keeps the keys.
    pub fn decrypt(&self, password: &[u8]) -> Result<Keypair, KeystoreError> {
        let c = &self.crypto;
        c.kdfparams.check()?;
        let salt: [u8; 32] = hex_field("salt", &c.salt)?;
        let nonce: [u8; 24] = hex_field("nonce", &c.nonce)?;
        let ciphertext =
            hex::decode(&c.ciphertext).map_err(|e| KeystoreError::Malformed(format!("ciphertext: {e}")))?;
        if ciphertext.len() != plaintext_len(self.version) + 16 {
            return Err(KeystoreError::Tampered("ciphertext has the wrong length"));
        }
        let key = derive(password, &salt, &c.kdfparams)?;
        if check_value(&key[32..]) != c.check.to_ascii_lowercase() {
            return Err(KeystoreError::WrongPassword);
        }
        let cipher = chacha20poly1305::XChaCha20Poly1305::new_from_slice(&key[..32])
            .map_err(|_| KeystoreError::Malformed("cipher key length".into()))?;
        let aad = aad(self.version, &self.address, self.suite, &c.kdfparams);
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    chacha20poly1305::XNonce::from_slice(&nonce),
                    Payload { msg: &ciphertext, aad: &aad },
                )
                .map_err(|_| KeystoreError::Tampered("authentication tag does not match"))?,
        );
        if plain.len() != plaintext_len(self.version) {
            return Err(KeystoreError::Tampered("secret keys have the wrong length"));
        }
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        seed.copy_from_slice(&plain[..SEED_LEN]);
        let keypair = if self.version == 1 {
            Keypair::from_seed(&seed)
        } else {
            Keypair::from_seed_and_falcon_key(&seed, &plain[SEED_LEN..])
                .map_err(|_| KeystoreError::Tampered("the Falcon secret key does not decode or sign"))?
        };
        if keypair.address() != self.address {
            return Err(KeystoreError::Tampered("address does not match the key"));
        }
        Ok(keypair)
    }
}

/// One file found by [`Keystore::list`]: its path and what parsing it gave.
pub type ListedKey = (PathBuf, Result<KeystoreFile, KeystoreError>);

/// A folder of keystore files, one per account, named `qoin-<address>.json`.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

impl Keystore {
    /// A keystore folder (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of the file for `address`.
    pub fn path_of(&self, address: &Address) -> PathBuf {
        self.dir.join(format!("qoin-{}.json", hex::encode(address)))
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError + '_ {
        move |source| KeystoreError::Io { path: path.to_path_buf(), source }
    }

    /// Writes an encrypted file for `seed`, returning the address. Existing files are never
    /// overwritten; the file is written to a temporary name and renamed into place.
    pub fn store(
        &self,
        seed: &[u8; SEED_LEN],
        password: &[u8],
        params: KdfParams,
    ) -> Result<Address, KeystoreError> {
        std::fs::create_dir_all(&self.dir).map_err(Self::io(&self.dir))?;
        let file = encrypt(seed, password, params)?;
        let path = self.path_of(&file.address);
        if path.exists() {
            return Err(KeystoreError::Io {
                path,
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "account already in keystore"),
            });
        }
        let tmp = path.with_extension("json.tmp");
        write_private(&tmp, file.to_json().as_bytes()).map_err(Self::io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(Self::io(&path))?;
        Ok(file.address)
    }

    /// Generates a new random account and stores it.
    pub fn create(&self, password: &[u8], params: KdfParams) -> Result<Address, KeystoreError> {
        let (_, seed) = Keypair::generate();
        self.store(&seed, password, params)
    }

    /// Reads and parses one file (no password needed).
    pub fn read(&self, path: &Path) -> Result<KeystoreFile, KeystoreError> {
        let text = std::fs::read_to_string(path).map_err(Self::io(path))?;
        KeystoreFile::parse(&text)
    }

    /// Every keystore file in the folder, sorted by address; unreadable files are returned
    /// as errors beside their path rather than hidden.
    pub fn list(&self) -> Result<Vec<ListedKey>, KeystoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&self.dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(Self::io(&self.dir))?.path();
            let is_key = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("qoin-") && n.ends_with(".json"));
            if is_key {
                let parsed = self.read(&path);
                out.push((path, parsed));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Opens the account `address` with `password`.
    pub fn unlock(&self, address: &Address, password: &[u8]) -> Result<Keypair, KeystoreError> {
        let file = self.read(&self.path_of(address))?;
        if file.address != *address {
            return Err(KeystoreError::Tampered("file name and address disagree"));
        }
        file.decrypt(password)
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
