//! Password hashing: Argon2id with the crate's defaults (brief, decision 7).

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// Shortest and longest password accepted at registration.
pub const MIN_LENGTH: usize = 8;
pub const MAX_LENGTH: usize = 1024;

pub fn hash(password: &str) -> String {
    Argon2::default().hash_password(password.as_bytes()).expect("argon2 hashing with default parameters").to_string()
}

/// True when `password` matches the stored PHC string. A malformed stored hash never matches.
pub fn verify(password: &str, stored: &str) -> bool {
    Argon2::default().verify_password(password.as_bytes(), stored).is_ok()
}

/// A hash of a password nobody has, verified when the email is unknown so that a login for a
/// missing account takes as long as one with a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash(&hex::encode(super::random_bytes::<16>())))
}

#[cfg(test)]
mod tests {
    #[test]
    fn argon2id_round_trip() {
        let stored = super::hash("correct horse");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(super::verify("correct horse", &stored));
        assert!(!super::verify("correct horse!", &stored));
        assert!(!super::verify("correct horse", "not a hash"));
    }
}
