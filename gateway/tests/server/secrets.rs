//! Function secrets: encrypted at rest, never answered by any API, given to the function's
//! workers as environment variables at once (workers restart without dropping calls), masked in
//! its stored log lines.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{archive, code, psql, Server};

const SECRET: &str = "sk_live_4f9a8b7c6d5e";

const FUNCTION: &str = r#"
import os, time
def handler(body):
    if body.get("sleep"):
        time.sleep(body["sleep"])
    token = os.environ.get("API_TOKEN")
    print("the token is", token)
    return {"token": token}
"#;

fn call(server: &Server, token: &str, body: Value) -> Value {
    let response = server.post_json("/fn/vault", Some(token), &body);
    assert_eq!(response.status(), 200);
    response.json().unwrap()
}

fn put(server: &Server, token: &str, name: &str, value: &str) -> (u16, Value) {
    let response = server
        .client
        .put(server.url(&format!("/api/functions/vault/secrets/{name}")))
        .bearer_auth(token)
        .json(&json!({ "value": value }))
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap_or(Value::Null))
}

fn secrets_are_sealed_delivered_and_masked(server: Server) {
    let owner = server.user("owner@example.com");
    assert_eq!(
        server.deploy(&owner, "vault", archive(&[("main.py", FUNCTION)]), &[("env", r#"{"PLAIN":"x"}"#)]).0,
        201
    );
    assert_eq!(call(&server, &owner, json!({}))["token"], Value::Null);

    // Set while a call is running: that call finishes; the next one sees the secret.
    let running = std::thread::scope(|scope| {
        let slow = scope.spawn(|| server.post_json("/fn/vault", Some(&owner), &json!({ "sleep": 1.5 })).status());
        std::thread::sleep(Duration::from_millis(300));
        let (status, answer) = put(&server, &owner, "API_TOKEN", SECRET);
        assert_eq!((status, answer["workers_restarted"].as_bool()), (201, Some(true)), "{answer}");
        slow.join().unwrap()
    });
    assert_eq!(running, 200, "the call running during the change was not dropped");
    assert_eq!(call(&server, &owner, json!({}))["token"], SECRET);
    assert_eq!(put(&server, &owner, "API_TOKEN", SECRET).0, 200, "replacing answers 200");

    // Names and dates only, and never the value anywhere else.
    let listed: Value = server.get("/api/functions/vault/secrets", Some(&owner)).json().unwrap();
    assert_eq!(listed["secrets"][0]["name"], "API_TOKEN", "{listed}");
    for path in
        ["/api/functions/vault/secrets", "/api/functions/vault", "/api/functions/vault/versions", "/api/functions"]
    {
        let text = server.get(path, Some(&owner)).text().unwrap();
        assert!(!text.contains(SECRET), "{path} shows the secret: {text}");
    }
    assert!(!server.get("/metrics", None).text().unwrap().contains(SECRET));
    // The function printed it: the stored line has it masked.
    std::thread::sleep(Duration::from_millis(500));
    let logs = server.get("/api/functions/vault/logs?limit=50", Some(&owner)).text().unwrap();
    assert!(logs.contains("the token is ***"), "{logs}");
    assert!(!logs.contains(SECRET), "{logs}");
    // At rest: sealed, not in clear text.
    if server.database_url.starts_with("sqlite:") {
        for file in ["containerpub.db", "containerpub.db-wal"] {
            let bytes = std::fs::read(server.data_dir.path().join(file)).unwrap_or_default();
            assert!(!bytes.windows(SECRET.len()).any(|window| window == SECRET.as_bytes()), "{file} holds the secret");
        }
    } else {
        let rows = psql(&server.database_url, "SELECT name, sealed FROM function_secrets").unwrap();
        assert!(rows.contains("API_TOKEN") && !rows.contains(SECRET), "{rows}");
    }

    // Refusals: reserved or invalid names, oversized values, someone else's function.
    for name in ["PATH", "DATABASE_URL", "FUNCTION_X", "1BAD"] {
        let (status, body) = put(&server, &owner, name, "v");
        assert_eq!((status, code(&body)), (400, "invalid_secret_name"), "{name}: {body}");
    }
    assert_eq!(put(&server, &owner, "BIG", &"x".repeat(40_000)).0, 400);
    let other = server.user("other@example.com");
    assert_eq!(put(&server, &other, "API_TOKEN", "mine now").0, 404);
    assert_eq!(server.get("/api/functions/vault/secrets", Some(&other)).status(), 404);

    // Unset: gone from the next call.
    let removed =
        server.client.delete(server.url("/api/functions/vault/secrets/API_TOKEN")).bearer_auth(&owner).send().unwrap();
    assert_eq!(removed.status(), 204);
    assert_eq!(call(&server, &owner, json!({}))["token"], Value::Null);
    let again =
        server.client.delete(server.url("/api/functions/vault/secrets/API_TOKEN")).bearer_auth(&owner).send().unwrap();
    assert_eq!(again.status(), 404);
}

both_stores!(secrets_are_sealed_delivered_and_masked);
