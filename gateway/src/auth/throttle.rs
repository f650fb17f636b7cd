//! Password guessing is slowed down: after a few wrong passwords for one account, or from one
//! client address, further attempts are refused with 429 and a `Retry-After` that doubles with
//! each failure (up to a cap), without checking the password. A right password clears the
//! account's count, so the real user is never locked out for good: at worst they wait.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Wrong passwords allowed before attempts are slowed down.
const FREE_FAILURES_PER_ACCOUNT: u32 = 5;
/// A client address tries many accounts: it gets more room before it is slowed down.
const FREE_FAILURES_PER_ADDRESS: u32 = 20;
const FIRST_DELAY: Duration = Duration::from_secs(1);
const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// Entries kept at most per table; beyond that, ones whose wait is over are dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    blocked_until: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: DashMap<String, Failures>,
    addresses: DashMap<IpAddr, Failures>,
}

impl LoginThrottle {
    /// `Some(wait)` when an attempt for `account` from `address` must not be checked now.
    pub fn wait(&self, account: &str, address: Option<IpAddr>, now: Instant) -> Option<Duration> {
        let remaining =
            |failures: &Failures| failures.blocked_until.and_then(|until| until.checked_duration_since(now));
        let by_account = self.accounts.get(account).and_then(|failures| remaining(&failures));
        let by_address =
            address.and_then(|address| self.addresses.get(&address).and_then(|failures| remaining(&failures)));
        by_account.into_iter().chain(by_address).max().filter(|wait| !wait.is_zero())
    }

    /// Counts a wrong password.
    pub fn failed(&self, account: &str, address: Option<IpAddr>, now: Instant) {
        record(&self.accounts, account.to_string(), FREE_FAILURES_PER_ACCOUNT, now);
        if let Some(address) = address {
            record(&self.addresses, address, FREE_FAILURES_PER_ADDRESS, now);
        }
    }

    /// A right password: the account starts afresh (its address keeps its count).
    pub fn succeeded(&self, account: &str) {
        self.accounts.remove(account);
    }
}

fn record<K: std::hash::Hash + Eq + Clone>(table: &DashMap<K, Failures>, key: K, free: u32, now: Instant) {
    if table.len() >= MAX_ENTRIES {
        table.retain(|_, failures| failures.blocked_until.is_some_and(|until| until > now));
    }
    let mut entry = table.entry(key).or_insert(Failures { count: 0, blocked_until: None });
    entry.count += 1;
    if entry.count > free {
        let doublings = (entry.count - free - 1).min(20);
        let delay = FIRST_DELAY.saturating_mul(1 << doublings).min(MAX_DELAY);
        entry.blocked_until = Some(now + delay);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_past_the_free_ones_wait_longer_each_time_and_a_success_resets() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let address = Some("192.0.2.1".parse().unwrap());
        for _ in 0..FREE_FAILURES_PER_ACCOUNT {
            assert_eq!(throttle.wait("ada", address, now), None);
            throttle.failed("ada", address, now);
        }
        assert_eq!(throttle.wait("ada", address, now), None, "the free failures cost nothing");
        throttle.failed("ada", address, now);
        assert_eq!(throttle.wait("ada", address, now), Some(Duration::from_secs(1)));
        throttle.failed("ada", address, now);
        assert_eq!(throttle.wait("ada", address, now), Some(Duration::from_secs(2)));
        assert_eq!(throttle.wait("ada", address, now + Duration::from_secs(3)), None, "the wait ends");
        assert_eq!(
            throttle.wait("bob", Some("192.0.2.9".parse().unwrap()), now),
            None,
            "other accounts are not slowed"
        );
        throttle.succeeded("ada");
        assert_eq!(throttle.wait("ada", None, now), None);
    }

    #[test]
    fn one_address_trying_many_accounts_is_slowed_down() {
        let throttle = LoginThrottle::default();
        let now = Instant::now();
        let address = Some("192.0.2.1".parse().unwrap());
        for n in 0..=FREE_FAILURES_PER_ADDRESS {
            throttle.failed(&format!("user{n}"), address, now);
        }
        assert!(throttle.wait("someone-new", address, now).is_some());
        assert_eq!(throttle.wait("someone-new", Some("192.0.2.2".parse().unwrap()), now), None);
    }
}
