//! The node's libp2p identity: an Ed25519 key kept in the data directory, so the peer id
//! survives restarts (and bootnode addresses stay valid).

use libp2p::identity::Keypair;
use std::io::Write as _;
use std::path::Path;

/// Why the node key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the file failed.
    #[error("node key {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a libp2p key.
    #[error("node key {path} is not a protobuf-encoded libp2p key: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// The decoder's reason.
        reason: String,
    },
}

/// Reads the key at `path`, or creates a new Ed25519 key there (mode 0600).
pub fn load_or_create(path: &Path) -> Result<Keypair, KeyError> {
    let io = |source| KeyError::Io { path: path.display().to_string(), source };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes)
            .map_err(|e| KeyError::Corrupt { path: path.display().to_string(), reason: e.to_string() }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| KeyError::Corrupt { path: path.display().to_string(), reason: e.to_string() })?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(path).map_err(io)?;
            f.write_all(&bytes).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}
