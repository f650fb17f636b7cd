//! API keys: `cpk_` + a lookup prefix + a secret, 32 random bytes in all. Only the prefix and a
//! SHA-256 of the whole key are stored; the key is shown once, at creation.

use sha2::{Digest, Sha256};

pub const KEY_PREFIX: &str = "cpk_";
/// Hex characters after `cpk_` that identify the row.
const LOOKUP_CHARS: usize = 12;

/// A freshly minted key.
#[derive(Debug)]
pub struct MintedKey {
    pub key: String,
    pub prefix: String,
    pub hash: String,
}

pub fn mint() -> MintedKey {
    let key = format!("{KEY_PREFIX}{}", hex::encode(super::random_bytes::<32>()));
    let prefix = key[..KEY_PREFIX.len() + LOOKUP_CHARS].to_string();
    let hash = hash(&key);
    MintedKey { key, prefix, hash }
}

pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The lookup prefix of something shaped like a key, or `None`.
pub fn prefix_of(key: &str) -> Option<&str> {
    let well_formed = key.len() == KEY_PREFIX.len() + 64
        && key.starts_with(KEY_PREFIX)
        && key[KEY_PREFIX.len()..].bytes().all(|byte| byte.is_ascii_hexdigit());
    well_formed.then(|| &key[..KEY_PREFIX.len() + LOOKUP_CHARS])
}

/// Compares hex digests in constant time, so a timing probe learns nothing about a stored hash.
pub fn hashes_match(left: &str, right: &str) -> bool {
    left.len() == right.len() && left.bytes().zip(right.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_are_recognised_by_prefix_and_hash() {
        let minted = mint();
        assert_eq!(prefix_of(&minted.key), Some(minted.prefix.as_str()));
        assert!(hashes_match(&hash(&minted.key), &minted.hash));
        assert_ne!(mint().key, minted.key);
        assert_eq!(prefix_of("cpk_short"), None);
        assert_eq!(prefix_of(&minted.key.replace("cpk_", "xyz_")), None);
    }
}
