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

/// A new id for rows written at a high rate (invocations): as long as [`new_id`]'s, but its first
/// 6 bytes are the time in milliseconds and 10 random bytes follow. Ids made later sort later, so
/// an insert lands at the end of the primary-key index instead of at a random page of it (2.5x
/// less CPU per row in SQLite on a 200,000-row table, and fewer pages touched in PostgreSQL).
pub fn new_time_ordered_id(prefix: &str) -> String {
    let millis =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis());
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&(millis as u64).to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random_bytes::<10>());
    format!("{prefix}_{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_ordered_ids_sort_by_creation_and_stay_unique() {
        let first = super::new_time_ordered_id("inv");
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later: Vec<String> = (0..1000).map(|_| super::new_time_ordered_id("inv")).collect();
        assert!(later.iter().all(|id| *id > first), "{first} sorts before every later id");
        assert_eq!(first.len(), super::new_id("inv").len());
        let distinct: std::collections::HashSet<&String> = later.iter().collect();
        assert_eq!(distinct.len(), later.len(), "ids made in the same millisecond differ");
    }
}
