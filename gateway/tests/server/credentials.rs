//! A platform credential never reaches a function: a caller's token or API key sent to another
//! tenant's public function is dropped from the event, valid or not; credentials of other
//! schemes, which a public function may implement itself, still reach it.

use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{archive, Server};

/// A public function that answers with the headers it received.
const ECHO_HEADERS: &str = "exports.handler = async (body, request) => ({ headers: request.headers });\n";

/// A JWT naming this server as issuer, signed with `secret`, expiring at `exp`.
fn token_like_ours(secret: &[u8], exp: u64) -> String {
    let claims = json!({ "sub": "usr_x", "iss": "containerpub", "aud": "containerpub-api", "exp": exp, "iat": 0 });
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret))
        .unwrap()
}

fn headers_seen(server: &Server, headers: &[(&str, &str)]) -> Value {
    let mut request = server.client.post(server.url("/fn/echo-headers")).json(&json!({}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    assert_eq!(response.status(), 200);
    response.json::<Value>().unwrap()["headers"].clone()
}

fn platform_credentials_never_reach_a_function(server: Server) {
    let owner = server.user("owner@example.com");
    let (status, deployed) =
        server.deploy(&owner, "echo-headers", archive(&[("index.js", ECHO_HEADERS)]), &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");

    let caller = server.user("caller@example.com");
    let key: Value = server.post_json("/api/keys", Some(&caller), &json!({ "name": "mine" })).json().unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {caller}");
    let expired = format!("Bearer {}", token_like_ours(b"whatever-secret-the-server-never-had", 1));
    let key_as_bearer = format!("bearer {key}");
    for (what, headers) in [
        ("the caller's login token", vec![("authorization", bearer.as_str())]),
        ("the caller's API key in X-API-Key", vec![("x-api-key", key.as_str())]),
        ("the caller's API key as a bearer token", vec![("authorization", key_as_bearer.as_str())]),
        ("a token naming this server, forged and expired", vec![("authorization", expired.as_str())]),
        ("a revoked-looking key", vec![("x-api-key", "cpk_0000000000000000")]),
    ] {
        let seen = headers_seen(&server, &headers);
        assert!(
            seen.get("authorization").is_none() && seen.get("x-api-key").is_none(),
            "{what} reached the function: {seen}"
        );
        assert!(!seen.to_string().contains(&caller) && !seen.to_string().contains(&key), "{what}: {seen}");
    }
    // Schemes a public function implements itself still reach it.
    let foreign = format!("Bearer {}", {
        let claims = json!({ "sub": "u", "iss": "auth.example.com", "exp": 4_000_000_000u64 });
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(b"k"))
            .unwrap()
    });
    let seen = headers_seen(&server, &[("authorization", "Basic dXNlcjpwYXNz"), ("x-api-key", "their-own-key")]);
    assert_eq!(
        (seen["authorization"].as_str(), seen["x-api-key"].as_str()),
        (Some("Basic dXNlcjpwYXNz"), Some("their-own-key"))
    );
    let seen = headers_seen(&server, &[("authorization", foreign.as_str())]);
    assert_eq!(
        seen["authorization"].as_str(),
        Some(foreign.as_str()),
        "another issuer's token is the function's business"
    );
}

both_stores!(platform_credentials_never_reach_a_function);
