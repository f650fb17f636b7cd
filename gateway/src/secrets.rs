//! Function secrets: values sealed with ChaCha20-Poly1305 under a key kept in the data directory
//! (`secrets_key`, 0600, generated once like the token secret) or given by the operator
//! (`CONTAINERPUB_SECRETS_KEY`). A sealed value is bound to its function and name (associated
//! data), so a row copied to another function does not open. Values leave the server only as
//! environment variables of the function's workers, and are masked (`***`) in its stored log
//! lines when printed verbatim.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use dashmap::DashMap;
use sha2::{Digest, Sha256};

use crate::store::Store;

/// Values shorter than this are not masked: `***` for every `a` in a log line helps nobody.
const MIN_MASKED_CHARS: usize = 4;
const NONCE_BYTES: usize = 12;

pub struct Secrets {
    cipher: ChaCha20Poly1305,
    /// Names the key without revealing it (see [`Secrets::fingerprint`]).
    fingerprint: String,
    /// Opened values of the functions prepared so far, by function id, for masking.
    values: DashMap<String, Vec<String>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets").finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret {0:?} cannot be opened: it was sealed with another key, or changed")]
    Unreadable(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Secrets {
    /// The key from `configured` (any text, hashed to 32 bytes) or the data directory's file.
    pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> anyhow::Result<Secrets> {
        let material =
            crate::auth::secret::load_or_create_named(configured, data_dir, "secrets_key", "CONTAINERPUB_SECRETS_KEY")?;
        Ok(Secrets::with_key(Sha256::digest(&material).into()))
    }

    pub fn with_key(key: [u8; 32]) -> Secrets {
        let fingerprint = hex::encode(Sha256::digest([&b"containerpub secrets key fingerprint\0"[..], &key].concat()));
        Secrets { cipher: ChaCha20Poly1305::new(&key.into()), fingerprint, values: DashMap::new() }
    }

    /// A hash of the key (one-way, with a purpose of its own), so that nodes sharing a store can
    /// check they were given the same key without keeping the key itself in the database.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Hex of a fresh nonce and the ciphertext of `value`, bound to `function_id` and `name`.
    pub fn seal(&self, function_id: &str, name: &str, value: &str) -> String {
        let nonce = crate::auth::random_bytes::<NONCE_BYTES>();
        let aad = associated_data(function_id, name);
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: &aad })
            .expect("sealing a value in memory cannot fail");
        hex::encode([nonce.as_slice(), &sealed].concat())
    }

    pub fn open(&self, function_id: &str, name: &str, sealed: &str) -> Result<String, SecretError> {
        let unreadable = || SecretError::Unreadable(name.to_string());
        let bytes = hex::decode(sealed).map_err(|_| unreadable())?;
        if bytes.len() < NONCE_BYTES {
            return Err(unreadable());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
        let aad = associated_data(function_id, name);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .map_err(|_| unreadable())?;
        String::from_utf8(plain).map_err(|_| unreadable())
    }

    /// The function's secrets, opened, as environment variables; remembered for masking.
    pub async fn environment(
        &self,
        store: &dyn Store,
        function_id: &str,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        let mut env = BTreeMap::new();
        for row in store.secrets(function_id).await? {
            env.insert(row.name.clone(), self.open(function_id, &row.name, &row.sealed)?);
        }
        let values = env.values().filter(|value| value.chars().count() >= MIN_MASKED_CHARS).cloned().collect();
        self.values.insert(function_id.to_string(), values);
        Ok(env)
    }

    /// `text` with every secret value of the function replaced by `***`.
    pub fn mask<'a>(&self, function_id: &str, text: &'a str) -> Cow<'a, str> {
        let Some(values) = self.values.get(function_id) else { return Cow::Borrowed(text) };
        let mut masked = Cow::Borrowed(text);
        for value in values.iter() {
            if masked.contains(value.as_str()) {
                masked = Cow::Owned(masked.replace(value.as_str(), "***"));
            }
        }
        masked
    }

    pub fn forget(&self, function_id: &str) {
        self.values.remove(function_id);
    }
}

fn associated_data(function_id: &str, name: &str) -> Vec<u8> {
    [function_id.as_bytes(), b"\0", name.as_bytes()].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_function_and_name_and_never_reads_in_clear() {
        let secrets = Secrets::with_key([3; 32]);
        let sealed = secrets.seal("fn_a", "TOKEN", "s3cret-value");
        assert!(!sealed.contains(&hex::encode("s3cret-value")));
        assert_eq!(secrets.open("fn_a", "TOKEN", &sealed).unwrap(), "s3cret-value");
        assert!(secrets.open("fn_b", "TOKEN", &sealed).is_err(), "copied to another function");
        assert!(secrets.open("fn_a", "OTHER", &sealed).is_err(), "renamed");
        assert!(Secrets::with_key([4; 32]).open("fn_a", "TOKEN", &sealed).is_err(), "another key");
        assert_ne!(sealed, secrets.seal("fn_a", "TOKEN", "s3cret-value"), "a fresh nonce each time");
    }

    #[test]
    fn printed_values_are_masked() {
        let secrets = Secrets::with_key([3; 32]);
        secrets.values.insert("fn_a".into(), vec!["hunter22".into()]);
        assert_eq!(secrets.mask("fn_a", "password=hunter22, again hunter22"), "password=***, again ***");
        assert_eq!(secrets.mask("fn_b", "hunter22"), "hunter22");
    }
}
