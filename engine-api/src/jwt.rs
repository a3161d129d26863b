//! JWT (HS256) authentication of engine API calls, as Ethereum's engine API specifies it
//! (`execution-apis/src/engine/authentication.md`): a 32-byte secret shared through a file
//! of 64 hex characters, a token `base64url(header).base64url(claims).base64url(HMAC)` with
//! `alg = HS256` and an `iat` claim within ±60 seconds of the receiver's clock. A missing,
//! expired, future-dated or wrongly signed token is refused before the call does anything.
//!
//! Tokens are made and checked by `jsonwebtoken` with the algorithm pinned to HS256; this
//! module adds what the engine API asks beyond RFC 7519: a required `iat` within ±60 s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// How far `iat` may be from the receiver's clock, in seconds.
pub const MAX_CLOCK_SKEW_SECS: u64 = 60;

/// Why a secret or a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// The secret file could not be read or written.
    #[error("JWT secret file {path}: {reason}")]
    SecretFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// The secret is not 64 hex characters.
    #[error("JWT secret must be 32 bytes as 64 hex characters (optionally 0x-prefixed)")]
    BadSecret,
    /// No `Authorization: Bearer …` was sent.
    #[error("missing JWT: send `authorization: Bearer <token>`")]
    Missing,
    /// Not three base64url parts of JSON.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The header names another algorithm.
    #[error("JWT algorithm must be HS256")]
    WrongAlgorithm,
    /// The signature does not match the secret.
    #[error("JWT signature does not match the shared secret")]
    BadSignature,
    /// The token has no `iat` claim.
    #[error("JWT has no iat claim")]
    NoIssuedAt,
    /// `iat` is too far in the past or future.
    #[error("JWT iat {iat} is {skew} s away from this clock ({now}); at most 60 s allowed")]
    Stale {
        /// The token's `iat`.
        iat: u64,
        /// This clock.
        now: u64,
        /// |now - iat|.
        skew: u64,
    },
}

/// The shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret([u8; 32]);

impl std::fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtSecret(…)")
    }
}

impl JwtSecret {
    /// Wraps raw bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random secret.
    pub fn random() -> Self {
        let mut b = [0u8; 32];
        OsRng.fill_bytes(&mut b);
        Self(b)
    }

    /// Parses 64 hex characters (surrounding whitespace and a `0x` prefix allowed).
    pub fn from_hex(text: &str) -> Result<Self, JwtError> {
        let t = text.trim();
        let t = t.strip_prefix("0x").unwrap_or(t);
        let bytes = hex::decode(t).map_err(|_| JwtError::BadSecret)?;
        <[u8; 32]>::try_from(bytes.as_slice()).map(Self).map_err(|_| JwtError::BadSecret)
    }

    /// The secret as 64 hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the secret at `path`, or creates it (random, owner-only permissions) if the
    /// file does not exist. Both programs call this with the same path.
    pub fn load_or_create(path: &Path) -> Result<Self, JwtError> {
        let err = |reason: String| JwtError::SecretFile { path: path.display().to_string(), reason };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = Self::random();
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::OpenOptionsExt;
                    options.mode(0o600);
                }
                match options.open(path) {
                    Ok(mut f) => {
                        use std::io::Write;
                        f.write_all(secret.to_hex().as_bytes()).map_err(|e| err(e.to_string()))?;
                        Ok(secret)
                    }
                    // The other program created it first: use theirs.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                        Self::from_hex(&text)
                    }
                    Err(e) => Err(err(e.to_string())),
                }
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// A token issued at `iat` (Unix seconds).
    pub fn token(&self, iat: u64) -> Result<String, JwtError> {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims { iat: Some(iat) },
            &EncodingKey::from_secret(&self.0),
        )
        .map_err(|_| JwtError::Malformed("cannot encode token"))
    }

    /// A token issued now.
    pub fn token_now(&self) -> Result<String, JwtError> {
        self.token(unix_now())
    }

    /// Checks `token` at time `now`: structure, algorithm (HS256 only), signature (constant
    /// time), `iat`.
    pub fn validate(&self, token: &str, now: u64) -> Result<(), JwtError> {
        let mut validation = Validation::new(Algorithm::HS256);
        // The engine API bounds `iat` instead of requiring `exp`; other claims are ignored.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_aud = false;
        let data = jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&self.0), &validation)
            .map_err(|e| classify(token, e.kind()))?;
        let iat = data.claims.iat.ok_or(JwtError::NoIssuedAt)?;
        let skew = now.abs_diff(iat);
        if skew > MAX_CLOCK_SKEW_SECS {
            return Err(JwtError::Stale { iat, now, skew });
        }
        Ok(())
    }

    /// Checks an `Authorization` header value (`Bearer <token>`) now.
    pub fn validate_header(&self, value: Option<&str>) -> Result<(), JwtError> {
        let value = value.ok_or(JwtError::Missing)?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or(JwtError::Malformed("authorization must be `Bearer <token>`"))?;
        self.validate(token.trim(), unix_now())
    }
}

/// The claims the engine API uses. Geth and others may add `id` or `clv`; they are ignored.
#[derive(Serialize, Deserialize)]
struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
}

/// Turns `jsonwebtoken`'s error into ours. A header whose `alg` is not one the library knows
/// (`"none"`, say) fails to parse there; it is still a wrong algorithm, not garbage.
fn classify(token: &str, kind: &ErrorKind) -> JwtError {
    match kind {
        ErrorKind::InvalidAlgorithm => JwtError::WrongAlgorithm,
        ErrorKind::InvalidSignature => JwtError::BadSignature,
        ErrorKind::InvalidToken => JwtError::Malformed("expected three dot-separated parts"),
        ErrorKind::Base64(_) => JwtError::Malformed("a part is not base64url"),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => match header_alg(token) {
            Some(alg) if alg != "HS256" => JwtError::WrongAlgorithm,
            _ => JwtError::Malformed("a part is not the expected JSON"),
        },
        _ => JwtError::Malformed("not a valid HS256 token"),
    }
}

/// The `alg` named in a token's header, if the header is base64url JSON with a string `alg`.
fn header_alg(token: &str) -> Option<String> {
    let header = B64.decode(token.split('.').next()?).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&header).ok()?;
    value.get("alg")?.as_str().map(str::to_owned)
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_fresh_token_passes_and_everything_else_is_refused() {
        let s = JwtSecret::new([7; 32]);
        let now = 1_800_000_000;
        assert_eq!(s.validate(&s.token(now).unwrap(), now), Ok(()));
        assert_eq!(s.validate(&s.token(now - 60).unwrap(), now), Ok(()));
        assert_eq!(s.validate(&s.token(now + 60).unwrap(), now), Ok(()));
        assert_eq!(
            s.validate(&s.token(now - 61).unwrap(), now),
            Err(JwtError::Stale { iat: now - 61, now, skew: 61 })
        );
        assert!(matches!(s.validate(&s.token(now + 61).unwrap(), now), Err(JwtError::Stale { .. })));
        let other = JwtSecret::new([8; 32]);
        assert_eq!(other.validate(&s.token(now).unwrap(), now), Err(JwtError::BadSignature));
        // Claims changed after signing.
        let t = s.token(now).unwrap();
        let parts: Vec<&str> = t.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], B64.encode(format!(r#"{{"iat":{}}}"#, now + 1)), parts[2]);
        assert_eq!(s.validate(&forged, now), Err(JwtError::BadSignature));
        // alg=none with no signature.
        let none = format!("{}.{}.", B64.encode(br#"{"alg":"none"}"#), parts[1]);
        assert_eq!(s.validate(&none, now), Err(JwtError::WrongAlgorithm));
        assert_eq!(s.validate_header(None), Err(JwtError::Missing));
        assert!(s.validate_header(Some("Basic abc")).is_err());
        assert_eq!(s.validate_header(Some(&format!("Bearer {}", s.token_now().unwrap()))), Ok(()));
    }

    #[test]
    fn a_signed_token_without_iat_is_refused() {
        let s = JwtSecret::new([1; 32]);
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub": "x"}),
            &EncodingKey::from_secret(&[1; 32]),
        )
        .unwrap();
        assert_eq!(s.validate(&token, 0), Err(JwtError::NoIssuedAt));
        // A token signed with another HMAC (HS512) under the same secret: wrong algorithm.
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &Claims { iat: Some(0) },
            &EncodingKey::from_secret(&[1; 32]),
        )
        .unwrap();
        assert_eq!(s.validate(&hs512, 0), Err(JwtError::WrongAlgorithm));
    }

    #[test]
    fn the_secret_file_is_created_once_and_shared() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/jwt.hex");
        let a = JwtSecret::load_or_create(&path).unwrap();
        let b = JwtSecret::load_or_create(&path).unwrap();
        assert_eq!(a, b);
        assert_eq!(std::fs::read_to_string(&path).unwrap().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        std::fs::write(&path, "0x1234").unwrap();
        assert_eq!(JwtSecret::load_or_create(&path), Err(JwtError::BadSecret));
        assert_eq!(
            JwtSecret::from_hex(&format!("0x{}\n", "ab".repeat(32))).unwrap(),
            JwtSecret::new([0xab; 32])
        );
    }

    proptest! {
        #[test]
        fn garbage_tokens_are_errors_not_panics(token in ".{0,200}", dots in proptest::collection::vec(".{0,40}", 0..5)) {
            let s = JwtSecret::new([3; 32]);
            prop_assert!(s.validate(&token, 0).is_err());
            prop_assert!(s.validate(&dots.join("."), 0).is_err());
        }
    }
}
