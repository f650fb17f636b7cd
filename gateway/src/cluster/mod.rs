//! The nodes of one platform: several `containerpub serve` sharing a PostgreSQL store. Each node
//! writes a heartbeat to `cluster_nodes` every [`HEARTBEAT`]; a node not heard from for
//! [`GONE_AFTER`] has left. The live nodes, ordered by id, split every function's concurrency cap
//! (`prewarm::cluster_share`). `/healthz` shows this node and its live peers. `sync` keeps what
//! the node routes in step with the store.

pub mod sync;

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{json, Value};

use crate::app::{now_ms, App};
use crate::store::NodeRecord;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Three missed heartbeats and a node is gone.
pub const GONE_AFTER: Duration = Duration::from_secs(6);

/// Starts the node's heartbeat (with a PostgreSQL store): the first beat and membership reading
/// happen before the node serves, so its first calls already run under its share of each cap.
/// (`sync::watch` starts once the active versions are warm.)
pub async fn start(app: &Arc<App>) {
    let started_at = now_ms();
    beat_once(app, started_at).await;
    tokio::spawn(beat(Arc::downgrade(app), started_at));
}

/// This node's heartbeat, until the server ends.
async fn beat(app: Weak<App>, started_at: i64) {
    loop {
        tokio::time::sleep(HEARTBEAT).await;
        let Some(app) = app.upgrade() else { return };
        beat_once(&app, started_at).await;
    }
}

/// Writes the heartbeat and takes this node's place among the live ones. What the database does
/// not take is only logged: the node keeps serving with the membership it last knew, and the
/// next beat tries again.
async fn beat_once(app: &App, started_at: i64) {
    if LEFT.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let node = NodeRecord {
        node_id: app.config.node_id(),
        address: app.config.listen.to_string(),
        started_at,
        heartbeat_at: now_ms(),
    };
    let since = now_ms() - GONE_AFTER.as_millis() as i64;
    match app.store.heartbeat(&node, since).await {
        Ok(true) => ID_TAKEN.store(false, std::sync::atomic::Ordering::Relaxed),
        Ok(false) => {
            ID_TAKEN.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::error!(node = %node.node_id, "another live node has this node id (or this node's previous run, until its heartbeat is 6 s old): give every node its own --node-id, or the concurrency caps are split wrong");
        }
        Err(error) => {
            tracing::debug!(%error, "heartbeat not written");
            return;
        }
    }
    match app.store.nodes_seen_since(since).await {
        Ok(nodes) => {
            let (position, count) = place(&node.node_id, nodes.iter().map(|node| node.node_id.as_str()));
            if app.prewarm.membership() != (position, count) {
                tracing::info!(node = %node.node_id, position, nodes = count, "cluster membership changed: each function's concurrency cap is split anew");
            }
            app.prewarm.set_membership(position, count);
        }
        Err(error) => tracing::debug!(%error, "membership not read"),
    }
}

/// This node's position among the live `nodes` (ordered by id; itself counted even when its own
/// heartbeat is not among them yet) and how many there are.
fn place<'a>(me: &str, nodes: impl Iterator<Item = &'a str>) -> (usize, usize) {
    let mut ids: Vec<&str> = nodes.filter(|id| *id != me).collect();
    ids.push(me);
    ids.sort_unstable();
    (ids.iter().position(|id| *id == me).expect("pushed above"), ids.len())
}

/// Set while another live process holds this node's id in the heartbeat table.
static ID_TAKEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set once the node left: no heartbeat brings it back while it finishes stopping.
static LEFT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Takes this node out of the membership as it stops, after its last call ended (leaving
/// earlier would let the others take its share while it still runs calls).
pub async fn leave(app: &App) {
    LEFT.store(true, std::sync::atomic::Ordering::Relaxed);
    let node = NodeRecord {
        node_id: app.config.node_id(),
        address: app.config.listen.to_string(),
        started_at: 0,
        heartbeat_at: 0,
    };
    if let Err(error) = app.store.leave(&node).await {
        tracing::debug!(%error, "could not leave the membership: the others see this node gone after its heartbeats stop");
    }
}

/// This node and the other live ones, for `/healthz`; `peers` is null when the store cannot say.
pub async fn health(app: &Arc<App>) -> Value {
    let id = app.config.node_id();
    let peers = if app.store.kind() == "postgres" {
        let since = now_ms() - GONE_AFTER.as_millis() as i64;
        match app.store.nodes_seen_since(since).await {
            Ok(nodes) => Value::from(
                nodes
                    .into_iter()
                    .filter(|node| node.node_id != id)
                    .map(|node| json!({ "id": node.node_id, "address": node.address, "heartbeat_at": node.heartbeat_at }))
                    .collect::<Vec<_>>(),
            ),
            Err(_) => Value::Null,
        }
    } else {
        // SQLite is one node's own file: no peers.
        Value::from(Vec::<Value>::new())
    };
    let id_taken = ID_TAKEN.load(std::sync::atomic::Ordering::Relaxed);
    json!({ "node": { "id": id, "address": app.config.listen.to_string(), "id_taken": id_taken }, "peers": peers })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_node_takes_its_place_by_id_and_counts_itself() {
        assert_eq!(super::place("b", ["a", "b", "c"].into_iter()), (1, 3));
        assert_eq!(super::place("b", ["a", "c"].into_iter()), (1, 3));
        assert_eq!(super::place("z", std::iter::empty()), (0, 1));
    }
}
