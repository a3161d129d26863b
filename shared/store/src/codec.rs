//! Byte codecs for keys and values.
//!
//! Integer keys are big-endian so MDBX's byte order is numeric order and cursors walk
//! heights in sequence.

use alloy_primitives::{Address, B256};
use std::borrow::Cow;

/// A value could not be decoded from the bytes stored in a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode {ty}: {reason}")]
pub struct DecodeError {
    /// The Rust type being decoded.
    pub ty: &'static str,
    /// What was wrong.
    pub reason: String,
}

impl DecodeError {
    /// A decode error for type `T`.
    pub fn new<T>(reason: impl Into<String>) -> Self {
        Self { ty: std::any::type_name::<T>(), reason: reason.into() }
    }
}

/// Turns a key or value into the bytes stored.
pub trait Encode {
    /// The encoding.
    fn encode(&self) -> Cow<'_, [u8]>;
}

/// Rebuilds a key or value from stored bytes.
pub trait Decode: Sized {
    /// Decodes, rejecting malformed bytes.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError>;
}

fn fixed<const N: usize, T>(bytes: &[u8]) -> Result<[u8; N], DecodeError> {
    bytes.try_into().map_err(|_| DecodeError::new::<T>(format!("expected {N} bytes, got {}", bytes.len())))
}

macro_rules! int_codec {
    ($($t:ty),*) => {$(
        impl Encode for $t {
            fn encode(&self) -> Cow<'_, [u8]> {
                Cow::Owned(self.to_be_bytes().to_vec())
            }
        }
        impl Decode for $t {
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                Ok(<$t>::from_be_bytes(fixed::<{ std::mem::size_of::<$t>() }, $t>(bytes)?))
            }
        }
        impl FixedWidth for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
        }
    )*};
}
int_codec!(u8, u32, u64, u128);

macro_rules! fixed_bytes_codec {
    ($($t:ty => $n:literal),*) => {$(
        impl Encode for $t {
            fn encode(&self) -> Cow<'_, [u8]> {
                Cow::Borrowed(self.as_slice())
            }
        }
        impl Decode for $t {
            fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
                Ok(<$t>::from(fixed::<$n, $t>(bytes)?))
            }
        }
        impl FixedWidth for $t {
            const WIDTH: usize = $n;
        }
    )*};
}
fixed_bytes_codec!(B256 => 32, Address => 20);

impl Encode for Vec<u8> {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }
}
impl Decode for Vec<u8> {
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(bytes.to_vec())
    }
}

impl Encode for String {
    fn encode(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}
impl Decode for String {
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError::new::<String>(e.to_string()))
    }
}

/// Composite key `(a, b)`: `a`'s encoding then `b`'s. `A` must have a fixed width so
/// decoding knows where it ends (all integer and hash types here do).
impl<A: Encode + Decode + FixedWidth, B: Encode + Decode> Encode for (A, B) {
    fn encode(&self) -> Cow<'_, [u8]> {
        let mut v = self.0.encode().into_owned();
        v.extend_from_slice(&self.1.encode());
        Cow::Owned(v)
    }
}
impl<A: Encode + Decode + FixedWidth, B: Encode + Decode> Decode for (A, B) {
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < A::WIDTH {
            return Err(DecodeError::new::<(A, B)>(format!(
                "{} bytes, key prefix needs {}",
                bytes.len(),
                A::WIDTH
            )));
        }
        let (a, b) = bytes.split_at(A::WIDTH);
        Ok((A::decode(a)?, B::decode(b)?))
    }
}

/// Types whose encoding always has the same length (usable as a composite-key prefix).
pub trait FixedWidth {
    /// Encoded length in bytes.
    const WIDTH: usize;
}
