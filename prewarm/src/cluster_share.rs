//! A function's concurrency cap across several servers (nodes) that share one store.
//!
//! # The rule
//! The cap a deploy sets (`max_concurrency`) is for the whole platform. With `n` live nodes, a
//! node runs at most `cap / n` of the function's invocations at once, and `cap % n` nodes run one
//! more. The nodes are ordered by id; which ones get the extra turns with the function (by a
//! stable hash of its name), so the remainders of many functions spread over all nodes. The
//! shares add up to the cap exactly, so the cap holds however a load balancer spreads the calls.
//! When the cap is below `n`, some nodes hold no share of that function: they refuse its calls
//! with 429 at once (`no_share_on_this_node`), and a client's retry lands on another node.
//!
//! Membership is each node's own view of the heartbeat table (the gateway's `cluster` module):
//! after a node joins or leaves, the others see it within a heartbeat, and for that long the
//! shares can add up to a little more or less than the cap. A single server is a membership of one:
//! its share is the cap.

use std::sync::atomic::{AtomicU64, Ordering};

/// The error code of a call refused because this node holds no share of the function's cap.
pub const NO_SHARE: &str = "no_share_on_this_node";

/// This node's place among the live ones: `(position, nodes)` packed into one word, so the hot
/// path reads it with one load.
#[derive(Debug)]
pub struct Membership(AtomicU64);

impl Default for Membership {
    fn default() -> Self {
        Self(AtomicU64::new(pack(0, 1)))
    }
}

fn pack(position: usize, nodes: usize) -> u64 {
    ((position as u64) << 32) | nodes as u64
}

impl Membership {
    /// This node is at `position` (0-based, by node id) of `nodes` live ones.
    pub fn set(&self, position: usize, nodes: usize) {
        let nodes = nodes.clamp(1, u32::MAX as usize);
        self.0.store(pack(position.min(nodes - 1), nodes), Ordering::Relaxed);
    }

    /// `(position, nodes)`.
    pub fn get(&self) -> (usize, usize) {
        let word = self.0.load(Ordering::Relaxed);
        ((word >> 32) as usize, (word & u32::MAX as u64) as usize)
    }

    /// This node's share of a cap of `cap` for the function whose name hashes to `rotation`.
    pub fn share(&self, cap: usize, rotation: u64) -> usize {
        let (position, nodes) = self.get();
        share(cap, nodes, position, rotation)
    }
}

/// The rule above: `cap / nodes`, plus one for the `cap % nodes` positions that follow the
/// function's rotation.
pub fn share(cap: usize, nodes: usize, position: usize, rotation: u64) -> usize {
    let nodes = nodes.max(1);
    let turn = (position + nodes - (rotation % nodes as u64) as usize) % nodes;
    cap / nodes + usize::from(turn < cap % nodes)
}

/// A hash of a function's name that every node computes alike (FNV-1a; std's hasher is seeded
/// per process).
pub fn rotation(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shares_add_up_to_the_cap_and_differ_by_at_most_one() {
        for nodes in 1..=7 {
            for cap in 0..=25 {
                for name in ["a", "echo", "slow-one"] {
                    let shares: Vec<usize> =
                        (0..nodes).map(|position| share(cap, nodes, position, rotation(name))).collect();
                    assert_eq!(shares.iter().sum::<usize>(), cap, "cap {cap} over {nodes}: {shares:?}");
                    let (low, high) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                    assert!(high - low <= 1, "cap {cap} over {nodes}: {shares:?}");
                }
            }
        }
    }

    #[test]
    fn a_lone_server_has_the_whole_cap() {
        let membership = Membership::default();
        assert_eq!(membership.share(10, rotation("echo")), 10);
        membership.set(2, 3);
        assert_eq!(membership.get(), (2, 3));
        membership.set(0, 1);
        assert_eq!(membership.share(10, rotation("echo")), 10);
    }

    #[test]
    fn the_extra_turns_of_different_functions_fall_on_different_nodes() {
        let holders: std::collections::BTreeSet<usize> = (0..20)
            .map(|index| format!("function-{index}"))
            .filter_map(|name| (0..3).find(|&position| share(1, 3, position, rotation(&name)) == 1))
            .collect();
        assert_eq!(holders.len(), 3, "a cap of 1 should land on every node for some function: {holders:?}");
    }
}
