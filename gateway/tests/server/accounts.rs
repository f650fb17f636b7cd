use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{code, Server, SECRET};

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn token(claims: Value, secret: &[u8]) -> String {
    encode(&Header::new(jsonwebtoken::Algorithm::HS256), &claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn me_status(server: &Server, token: &str) -> (u16, Value) {
    let response = server.get("/api/auth/me", Some(token));
    (response.status().as_u16(), response.json().unwrap())
}

fn accounts_tokens_and_keys(server: Server) {
    // Registration and its bad inputs.
    let good = json!({ "email": "Ada@Example.com", "password": "correct horse battery" });
    let response = server.post_json("/api/auth/register", None, &good);
    assert_eq!(response.status(), 201);
    let user: Value = response.json().unwrap();
    assert_eq!(user["email"], "ada@example.com");
    let again = server.post_json("/api/auth/register", None, &good);
    assert_eq!(again.status(), 409);
    assert_eq!(code(&again.json().unwrap()), "email_taken");
    let cases = [
        (r#"{"email": "x@example.com", "password": "#, 400, "invalid_json"),
        (r#"{"email": "x@example.com"}"#, 400, "invalid_request"),
        (r#"{"email": "x@example.com", "password": "short"}"#, 400, "weak_password"),
        (r#"{"email": "not-an-email", "password": "long enough pw"}"#, 400, "invalid_email"),
        (r#"[1, 2]"#, 400, "invalid_request"),
        ("", 400, "invalid_json"),
    ];
    for (body, status, expected) in cases {
        let response = server.client.post(server.url("/api/auth/register")).body(body).send().unwrap();
        assert_eq!(response.status(), status, "{body}");
        let body_json: Value = response.json().unwrap();
        assert_eq!(code(&body_json), expected, "{body}: {body_json}");
        assert!(body_json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let missing =
        server.client.post(server.url("/api/auth/register")).body(r#"{"email": "x@example.com"}"#).send().unwrap();
    assert!(missing.text().unwrap().contains("password"), "the message names the missing field");

    // Login.
    let wrong =
        server.post_json("/api/auth/login", None, &json!({ "email": "ada@example.com", "password": "wrong password" }));
    assert_eq!(wrong.status(), 401);
    assert_eq!(code(&wrong.json().unwrap()), "invalid_credentials");
    let unknown =
        server.post_json("/api/auth/login", None, &json!({ "email": "nobody@example.com", "password": "whatever1" }));
    assert_eq!(unknown.status(), 401);
    let login: Value = server.post_json("/api/auth/login", None, &good).json().unwrap();
    let jwt = login["token"].as_str().unwrap();
    assert!(login["expires_at"].as_u64().unwrap() > now());
    let (status, me) = me_status(&server, jwt);
    assert_eq!(status, 200);
    assert_eq!(me["id"], user["id"]);

    // Tokens that must be refused.
    let user_id = user["id"].as_str().unwrap();
    let claims = |exp: u64| json!({ "sub": user_id, "iss": "containerpub", "aud": "containerpub-api", "exp": exp, "iat": now() });
    assert_eq!(
        me_status(&server, &token(claims(now() + 600), SECRET.as_bytes())).0,
        200,
        "a well-formed forged token is the control"
    );
    let expired = me_status(&server, &token(claims(now() - 600), SECRET.as_bytes()));
    assert_eq!((expired.0, code(&expired.1)), (401, "token_expired"));
    let wrong_key = me_status(&server, &token(claims(now() + 600), b"another-secret-another-secret-0123456789"));
    assert_eq!((wrong_key.0, code(&wrong_key.1)), (401, "invalid_token"));
    let payload = jwt.split('.').nth(1).unwrap();
    let unsigned = me_status(&server, &format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}."));
    assert_eq!((unsigned.0, code(&unsigned.1)), (401, "invalid_token"));
    let no_audience = json!({ "sub": user_id, "iss": "containerpub", "exp": now() + 600 });
    assert_eq!(me_status(&server, &token(no_audience, SECRET.as_bytes())).0, 401);
    assert_eq!(me_status(&server, "garbage").0, 401);
    let none = server.get("/api/auth/me", None);
    assert_eq!(none.status(), 401);
    assert_eq!(code(&none.json().unwrap()), "unauthenticated");

    // API keys: shown once, usable, listed without the secret, revocable. (`deploy`: a key with
    // the default `invoke` scope reads nothing, /api/auth/me included; `tenancy.rs` has scopes.)
    let created = server.post_json("/api/keys", Some(jwt), &json!({ "name": "ci", "scope": "deploy" }));
    assert_eq!(created.status(), 201);
    let created: Value = created.json().unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with(created["prefix"].as_str().unwrap()));
    assert_eq!(me_status(&server, &key).0, 200);
    let by_header = server.client.get(server.url("/api/auth/me")).header("x-api-key", &key).send().unwrap();
    assert_eq!(by_header.status(), 200);
    let listed = server.get("/api/keys", Some(jwt)).text().unwrap();
    assert!(listed.contains(created["prefix"].as_str().unwrap()) && !listed.contains(&key), "{listed}");
    // The same key with its last hex digit changed (to a different digit, whatever it was).
    let last = if key.ends_with('0') { '1' } else { '0' };
    let bad_key = format!("{}{last}", &key[..key.len() - 1]);
    let guessed = me_status(&server, &bad_key);
    assert_eq!((guessed.0, code(&guessed.1)), (401, "invalid_api_key"));
    let other = server.user("eve@example.com");
    let id = created["id"].as_str().unwrap();
    let stolen = server.client.delete(server.url(&format!("/api/keys/{id}"))).bearer_auth(&other).send().unwrap();
    assert_eq!(stolen.status(), 404, "another user cannot revoke the key");
    let revoked = server.client.delete(server.url(&format!("/api/keys/{id}"))).bearer_auth(jwt).send().unwrap();
    assert_eq!(revoked.status(), 204);
    let after = me_status(&server, &key);
    assert_eq!((after.0, code(&after.1)), (401, "api_key_revoked"));
    let nameless = server.post_json("/api/keys", Some(jwt), &json!({}));
    assert_eq!(nameless.status(), 400);
}
both_stores!(accounts_tokens_and_keys);
