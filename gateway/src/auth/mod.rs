//! Who is calling: bearer tokens (JWT) from `login`, API keys, and the secrets behind them.

pub mod accounts;
pub mod api_keys;
pub mod invites;
pub mod passwords;
pub mod scopes;
pub mod secret;
pub mod throttle;
pub mod tokens;

/// Random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// A new opaque id: `prefix` and 16 random bytes in hex. Prefixes contain `_`, which function
/// names cannot, so an id never reads as a name.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", hex::encode(random_bytes::<16>()))
}
