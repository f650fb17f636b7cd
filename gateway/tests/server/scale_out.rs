//! Several `containerpub` nodes on one PostgreSQL store (issue 14): each node has its own data
//! directory, and what one node issues, the others accept.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use crate::harness::{fresh_postgres_database, postgres_url, psql, Server};

/// The functions' secrets key every node of one store must be given (README, "Running several
/// nodes"); a test node otherwise generates its own.
pub const SHARED_SECRETS_KEY: (&str, &str) =
    ("CONTAINERPUB_SECRETS_KEY", "a-secrets-key-every-node-of-the-test-cluster-shares");

/// The environment of a node of a test cluster: the shared secrets key, and `more`.
pub fn node_env(more: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![(SHARED_SECRETS_KEY.0, SHARED_SECRETS_KEY.1.to_string())];
    env.extend(more.iter().map(|(key, value)| (*key, value.to_string())));
    env
}

/// A token issued by one node is accepted by another: they sign with the secret the first node
/// kept in the store, and neither keeps one of its own.
#[test]
fn nodes_on_one_store_accept_each_others_tokens() {
    let Some(admin) = postgres_url() else { return };
    let database = fresh_postgres_database(&admin);
    // No `JWT_SECRET`: the nodes must agree on a secret by themselves.
    let env = node_env(&[("JWT_SECRET", "")]);
    let node = || Server::start_on_with_env(Arc::new(tempfile::tempdir().unwrap()), database.clone(), &env);
    let (first, second) = (node(), node());
    let ada = first.user("ada@example.com");
    assert_eq!(second.get("/api/auth/me", Some(&ada)).status(), 200, "{}", second.log());
    let from_second = second.login("ada@example.com");
    assert_eq!(first.get("/api/auth/me", Some(&from_second)).status(), 200);
    for node in [&first, &second] {
        assert!(!node.data_dir.path().join("jwt_secret").exists(), "a node kept a secret of its own");
    }
    let kept = psql(&first.database_url, "SELECT count(*) FROM cluster_settings WHERE name = 'jwt_secret'");
    assert_eq!(kept.unwrap(), "1");
}

/// A server that ran alone, with the secret in its data directory, keeps its tokens valid when
/// it moves to a shared store: it proposes that secret, and the store keeps it.
#[test]
fn a_lone_servers_secret_becomes_the_clusters() {
    let Some(admin) = postgres_url() else { return };
    let data = Arc::new(tempfile::tempdir().unwrap());
    let secret = "a1".repeat(32);
    let file = data.path().join("jwt_secret");
    std::fs::write(&file, &secret).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let node = Server::start_on_with_env(data, fresh_postgres_database(&admin), &node_env(&[("JWT_SECRET", "")]));
    let kept = psql(&node.database_url, "SELECT value FROM cluster_settings WHERE name = 'jwt_secret'");
    assert_eq!(kept.unwrap(), secret);
}

/// Each node names itself (`CONTAINERPUB_NODE_ID`, `--node-id`; the host name by default) and
/// `/healthz` shows it with its live peers; a node stopped leaves the peers once its
/// heartbeats stop.
#[test]
fn healthz_shows_the_node_and_its_live_peers() {
    let Some(admin) = postgres_url() else { return };
    let database = fresh_postgres_database(&admin);
    let node = |id: &str| {
        Server::start_on_with_env(
            Arc::new(tempfile::tempdir().unwrap()),
            database.clone(),
            &node_env(&[("CONTAINERPUB_NODE_ID", id)]),
        )
    };
    let (first, mut second) = (node("node-a"), node("node-b"));
    let peers = |server: &Server| -> Vec<String> {
        server.health()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|peer| peer["id"].as_str().unwrap().to_string())
            .collect()
    };
    let started = std::time::Instant::now();
    while peers(&first) != ["node-b"] {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "{}", first.health());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(first.health()["node"]["id"], "node-a");
    assert_eq!(peers(&second), ["node-a"]);
    assert_eq!(second.stop(), Some(0));
    let stopped = std::time::Instant::now();
    while !peers(&first).is_empty() {
        assert!(stopped.elapsed() < std::time::Duration::from_secs(15), "a stopped node is still a peer");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Two nodes given the same id: the second one's heartbeat does not overwrite the first's, and
/// its `/healthz` says the id is taken (its log says what to do).
#[test]
fn a_node_id_given_twice_is_reported() {
    let Some(admin) = postgres_url() else { return };
    let database = fresh_postgres_database(&admin);
    let node = || {
        Server::start_on_with_env(
            Arc::new(tempfile::tempdir().unwrap()),
            database.clone(),
            &node_env(&[("CONTAINERPUB_NODE_ID", "twin")]),
        )
    };
    let first = node();
    let second = node();
    assert_eq!(first.health()["node"]["id_taken"], false, "{}", first.health());
    assert_eq!(second.health()["node"]["id_taken"], true, "{}", second.health());
    assert!(second.log().contains("another live node has this node id"));
    let holder = psql(&first.database_url, "SELECT address FROM cluster_nodes WHERE node_id = 'twin'").unwrap();
    assert_eq!(format!("http://{holder}"), first.base);
}

/// An account disabled through one node is refused by the others within a second (each node
/// keeps the disabled marks in memory), and enabled again likewise.
#[test]
fn an_account_disabled_on_one_node_is_refused_by_the_others() {
    let Some(admin) = postgres_url() else { return };
    let database = fresh_postgres_database(&admin);
    let node = || Server::start_on_with_env(Arc::new(tempfile::tempdir().unwrap()), database.clone(), &node_env(&[]));
    let (first, second) = (node(), node());
    let ada = first.user("ada@example.com");
    assert_eq!(second.get("/api/auth/me", Some(&ada)).status(), 200);
    let id =
        first.get("/api/auth/me", Some(&ada)).json::<serde_json::Value>().unwrap()["id"].as_str().unwrap().to_string();
    let within_a_second = |expected: u16| {
        let changed = std::time::Instant::now();
        while second.get("/api/auth/me", Some(&ada)).status() != expected {
            assert!(changed.elapsed() < std::time::Duration::from_secs(1), "node 2 still does not answer {expected}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    let disabled =
        first.post_json(&format!("/api/admin/users/{id}/disable"), Some(&first.admin), &serde_json::json!({}));
    assert_eq!(disabled.status(), 200, "{}", disabled.text().unwrap());
    within_a_second(403);
    let enabled = first.post_json(&format!("/api/admin/users/{id}/enable"), Some(&first.admin), &serde_json::json!({}));
    assert_eq!(enabled.status(), 200);
    within_a_second(200);
}

/// A node given another functions' secrets key than the nodes before it on the same store stops
/// at start, saying what to do, before it sets anything up: secrets one node sealed must open on
/// every node.
#[test]
fn a_node_with_another_secrets_key_refuses_to_start() {
    let Some(admin) = postgres_url() else { return };
    let database = fresh_postgres_database(&admin);
    let _first = Server::start_on_with_env(Arc::new(tempfile::tempdir().unwrap()), database.clone(), &node_env(&[]));
    let data = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(crate::harness::workspace_binary("containerpub"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .env("DATABASE_URL", &database)
        .env("JWT_SECRET", crate::harness::SECRET)
        .env("CONTAINERPUB_SECRETS_KEY", "another-key-than-the-first-nodes-at-least-32-bytes")
        .env("CONTAINERPUB_WORKER_EXEC", crate::harness::workspace_binary("containerpub-worker-exec"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("give every node the same CONTAINERPUB_SECRETS_KEY"), "{stderr}");
}
