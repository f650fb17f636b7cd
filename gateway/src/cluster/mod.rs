//! The nodes of one platform: several `containerpub serve` sharing a PostgreSQL store. Each node
//! writes a heartbeat to `cluster_nodes` every [`HEARTBEAT`]; a node not heard from for
//! [`GONE_AFTER`] has left. `/healthz` shows this node and its live peers.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::{json, Value};

use crate::app::{now_ms, App};
use crate::store::NodeRecord;

/// How often a node says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// Three missed heartbeats and a node is gone.
pub const GONE_AFTER: Duration = Duration::from_secs(6);

/// This node's heartbeat, until the server ends. A beat the database does not take is only
/// logged: the node keeps serving, and the next beat tries again.
pub async fn beat(app: Weak<App>) {
    let started_at = now_ms();
    loop {
        let Some(app) = app.upgrade() else { return };
        let node = NodeRecord {
            node_id: app.config.node_id(),
            address: app.config.listen.to_string(),
            started_at,
            heartbeat_at: now_ms(),
        };
        if let Err(error) = app.store.heartbeat(&node).await {
            tracing::debug!(%error, "heartbeat not written");
        }
        drop(app);
        tokio::time::sleep(HEARTBEAT).await;
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
    json!({ "node": { "id": id, "address": app.config.listen.to_string() }, "peers": peers })
}
