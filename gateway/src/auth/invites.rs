//! One-time invitations: `cpi_` and 24 random bytes, shown once; only a SHA-256 is stored.

use sha2::{Digest, Sha256};

pub const CODE_PREFIX: &str = "cpi_";

pub fn mint() -> String {
    format!("{CODE_PREFIX}{}", hex::encode(super::random_bytes::<24>()))
}

pub fn hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().as_bytes()))
}
