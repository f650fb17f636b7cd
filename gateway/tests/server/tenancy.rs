//! Who may sign up and what each credential may do: the sign-up policy (the first account is the
//! administrator, then invitations), disabled accounts cut off at once, password guessing slowed
//! down, API key scopes, and what the public sees of `/healthz` and `/metrics`.

use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{archive, code, Backend, Server, ADMIN_EMAIL};

fn register(server: &Server, email: &str, invite: Option<&str>) -> (u16, Value) {
    let mut body = json!({ "email": email, "password": "correct horse battery" });
    if let Some(invite) = invite {
        body["invite"] = Value::from(invite);
    }
    let response = server.post_json("/api/auth/register", None, &body);
    (response.status().as_u16(), response.json().unwrap_or(Value::Null))
}

fn status_of(response: reqwest::blocking::Response) -> (u16, Value) {
    (response.status().as_u16(), response.json().unwrap_or(Value::Null))
}

fn sign_up_policy_and_disabled_accounts(server: Server) {
    // The harness registered the server's first account: it is the administrator.
    let me: Value = server.get("/api/auth/me", Some(&server.admin)).json().unwrap();
    assert_eq!((me["email"].as_str(), me["admin"].as_bool()), (Some(ADMIN_EMAIL), Some(true)), "{me}");

    // Then registration is closed, saying why.
    let (status, refused) = register(&server, "mallory@example.com", None);
    assert_eq!((status, code(&refused)), (403, "registration_closed"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("--invite"), "{refused}");

    // Invitations: single use, and they expire.
    let (status, invite) = status_of(server.post_json("/api/admin/invites", Some(&server.admin), &json!({})));
    assert_eq!(status, 201, "{invite}");
    let code_text = invite["code"].as_str().unwrap().to_string();
    let (status, ada) = register(&server, "ada@example.com", Some(&code_text));
    assert_eq!((status, ada["admin"].as_bool()), (201, Some(false)), "{ada}");
    let (status, reused) = register(&server, "eve@example.com", Some(&code_text));
    assert_eq!((status, code(&reused)), (403, "invalid_invite"), "{reused}");
    let (_, short) =
        status_of(server.post_json("/api/admin/invites", Some(&server.admin), &json!({ "ttl_seconds": 1 })));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, expired) = register(&server, "eve@example.com", short["code"].as_str());
    assert_eq!((status, code(&expired)), (403, "invalid_invite"), "{expired}");
    // An invitation consumed by a failed sign-up (email taken) stays usable.
    let (_, fresh) = status_of(server.post_json("/api/admin/invites", Some(&server.admin), &json!({})));
    let (status, _) = register(&server, "ada@example.com", fresh["code"].as_str());
    assert_eq!(status, 409);
    assert_eq!(register(&server, "eve@example.com", fresh["code"].as_str()).0, 201);

    // Administrators create accounts; others may not administer.
    let (status, made) =
        status_of(server.post_json("/api/admin/users", Some(&server.admin), &json!({ "email": "bo@example.com" })));
    assert_eq!(status, 201, "{made}");
    assert!(made["password"].as_str().unwrap().len() >= 16, "a generated password is returned once");
    let ada_token = server.login("ada@example.com");
    let (status, refused) = status_of(server.post_json("/api/admin/invites", Some(&ada_token), &json!({})));
    assert_eq!((status, code(&refused)), (403, "insufficient_scope"), "{refused}");
    let listed: Value = server.get("/api/admin/users", Some(&server.admin)).json().unwrap();
    assert_eq!(listed["users"].as_array().unwrap().len(), 4, "{listed}");

    // Disabling cuts an account off at once: its token, its keys and its public function.
    let key: Value =
        server.post_json("/api/keys", Some(&ada_token), &json!({ "name": "k", "scope": "deploy" })).json().unwrap();
    let key = key["key"].as_str().unwrap().to_string();
    let (status, _) = server.deploy(
        &ada_token,
        "ada-public",
        archive(&[("main.py", "def handler(body):\n    return {'ok': True}\n")]),
        &[("public", "true")],
    );
    assert_eq!(status, 201);
    assert_eq!(server.post_json("/fn/ada-public", None, &json!({})).status(), 200);
    let ada_id = ada["id"].as_str().unwrap();
    let (status, disabled) =
        status_of(server.post_json(&format!("/api/admin/users/{ada_id}/disable"), Some(&server.admin), &json!({})));
    assert_eq!(status, 200, "{disabled}");
    assert!(disabled["disabled_at"].is_i64());
    for (what, response) in [
        ("token", server.get("/api/functions", Some(&ada_token))),
        ("key", server.get("/api/functions", Some(&key))),
        ("public function", server.post_json("/fn/ada-public", None, &json!({}))),
    ] {
        let (status, body) = status_of(response);
        assert_eq!((status, code(&body)), (403, "account_disabled"), "{what}: {body}");
    }
    let login = server.post_json(
        "/api/auth/login",
        None,
        &json!({ "email": "ada@example.com", "password": "correct horse battery" }),
    );
    assert_eq!(login.status(), 403);
    // Enabled again, the same token works.
    server.post_json(&format!("/api/admin/users/{ada_id}/enable"), Some(&server.admin), &json!({}));
    assert_eq!(server.get("/api/functions", Some(&ada_token)).status(), 200);
    assert_eq!(server.post_json("/fn/ada-public", None, &json!({})).status(), 200);
}

both_stores!(sign_up_policy_and_disabled_accounts, env = [("CONTAINERPUB_REGISTRATION", "first-user".to_string())]);

#[test]
fn open_and_invite_only_registration() {
    let Some(open) = Server::start_with_env(Backend::Sqlite, &[("CONTAINERPUB_REGISTRATION", "open".to_string())])
    else {
        return;
    };
    assert_eq!(register(&open, "anyone@example.com", None).0, 201);
    let Some(invite_only) =
        Server::start_with_env(Backend::Sqlite, &[("CONTAINERPUB_REGISTRATION", "invite".to_string())])
    else {
        return;
    };
    let (status, refused) = register(&invite_only, "anyone@example.com", None);
    assert_eq!((status, code(&refused)), (403, "registration_closed"));
}

#[test]
fn password_guessing_is_throttled_without_locking_the_user_out() {
    let Some(server) = Server::start_with_env(Backend::Sqlite, &[]) else { return };
    server.user("target@example.com");
    let attempt = |password: &str| {
        server.post_json("/api/auth/login", None, &json!({ "email": "target@example.com", "password": password }))
    };
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for n in 0..8 {
        let response = attempt(&format!("guess number {n}"));
        if response.status() == 429 {
            retry_after =
                response.headers().get("retry-after").map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
        }
        statuses.push(response.status().as_u16());
    }
    assert_eq!(&statuses[..5], &[401; 5], "{statuses:?}");
    assert!(statuses[5..].contains(&429), "guessing is slowed down: {statuses:?}");
    assert!(retry_after.is_some_and(|seconds| (1..=900).contains(&seconds)), "{retry_after:?}");
    // While throttled even the right password waits; once the wait is over it works.
    assert_eq!(attempt("correct horse battery").status(), 429);
    std::thread::sleep(std::time::Duration::from_secs(retry_after.unwrap() + 1));
    // A new connection: the wait outlasted the server's keep-alive (2 s in tests).
    let fresh = reqwest::blocking::Client::new()
        .post(server.url("/api/auth/login"))
        .json(&json!({ "email": "target@example.com", "password": "correct horse battery" }))
        .send()
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let metrics = server.get("/metrics", None).text().unwrap();
    assert!(metrics.contains("containerpub_logins_total{result=\"failed\"}"), "{metrics}");
    assert!(!metrics.contains("containerpub_logins_total{result=\"throttled\"} 0"), "{metrics}");
}

fn key_scopes(server: Server) {
    let owner = server.user("owner@example.com");
    let python = archive(&[("main.py", "def handler(body):\n    return {'ok': True}\n")]);
    assert_eq!(server.deploy(&owner, "alpha", python.clone(), &[]).0, 201);
    assert_eq!(server.deploy(&owner, "beta", python.clone(), &[]).0, 201);
    let make = |body: Value| -> (u16, Value) { status_of(server.post_json("/api/keys", Some(&owner), &body)) };

    // Default scope: invoke. It calls its owner's private functions and reads nothing else.
    let (status, invoke) = make(json!({ "name": "caller" }));
    assert_eq!((status, invoke["scope"].as_str()), (201, Some("invoke")), "{invoke}");
    let invoke = invoke["key"].as_str().unwrap().to_string();
    assert_eq!(server.post_json("/fn/alpha", Some(&invoke), &json!({})).status(), 200);
    for path in ["/api/functions", "/api/functions/alpha", "/api/functions/alpha/logs", "/api/auth/me", "/api/keys"] {
        let (status, body) = status_of(server.get(path, Some(&invoke)));
        assert_eq!((status, code(&body)), (403, "insufficient_scope"), "{path}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("deploy scope"), "{body}");
    }
    assert_eq!(server.deploy(&invoke, "alpha", python.clone(), &[]).0, 403);
    let (status, _) =
        status_of(server.post_json("/api/keys", Some(&invoke), &json!({ "name": "escalate", "scope": "deploy" })));
    assert_eq!(status, 403, "a key never makes a stronger one");

    // deploy: the control plane of its owner's functions, not administration.
    let (_, deploy) = make(json!({ "name": "ci", "scope": "deploy" }));
    let deploy = deploy["key"].as_str().unwrap().to_string();
    assert_eq!(server.deploy(&deploy, "alpha", python.clone(), &[]).0, 201);
    assert_eq!(server.get("/api/functions/alpha/versions", Some(&deploy)).status(), 200);
    let (status, body) = status_of(server.get("/api/admin/users", Some(&deploy)));
    assert_eq!((status, code(&body)), (403, "insufficient_scope"));

    // admin: only for administrators.
    let (status, body) = make(json!({ "name": "root", "scope": "admin" }));
    assert_eq!((status, code(&body)), (403, "insufficient_scope"), "{body}");
    let (status, admin_key) =
        status_of(server.post_json("/api/keys", Some(&server.admin), &json!({ "name": "ops", "scope": "admin" })));
    assert_eq!(status, 201, "{admin_key}");
    let admin_key = admin_key["key"].as_str().unwrap().to_string();
    assert_eq!(server.get("/api/admin/users", Some(&admin_key)).status(), 200);

    // Limited to named functions.
    let (_, limited) = make(json!({ "name": "alpha-only", "scope": "deploy", "functions": ["alpha"] }));
    let limited = limited["key"].as_str().unwrap().to_string();
    assert_eq!(server.post_json("/fn/alpha", Some(&limited), &json!({})).status(), 200);
    let (status, body) = status_of(server.post_json("/fn/beta", Some(&limited), &json!({})));
    assert_eq!((status, code(&body)), (403, "insufficient_scope"), "{body}");
    assert_eq!(server.get("/api/functions/beta", Some(&limited)).status(), 403);
    let listed: Value = server.get("/api/functions", Some(&limited)).json().unwrap();
    assert_eq!(listed["functions"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(server.deploy(&limited, "beta", python.clone(), &[]).0, 403);

    // An expiry.
    let soon = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 + 800;
    let (_, expiring) = make(json!({ "name": "brief", "expires_at": soon }));
    let expiring = expiring["key"].as_str().unwrap().to_string();
    assert_eq!(server.post_json("/fn/alpha", Some(&expiring), &json!({})).status(), 200);
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let (status, body) = status_of(server.post_json("/fn/alpha", Some(&expiring), &json!({})));
    assert_eq!((status, code(&body)), (401, "api_key_expired"), "{body}");
    let listed: Value = server.get("/api/keys", Some(&owner)).json().unwrap();
    assert!(listed["keys"].as_array().unwrap().iter().any(|key| key["scope"] == "invoke"), "{listed}");
}

both_stores!(key_scopes);

#[test]
fn the_public_sees_only_status_and_metrics_can_need_a_token() {
    let Some(server) =
        Server::start_with_env(Backend::Sqlite, &[("CONTAINERPUB_METRICS_TOKEN", "scrape-secret-123".to_string())])
    else {
        return;
    };
    let public: Value = server.get("/healthz", None).json().unwrap();
    assert_eq!(public, json!({ "status": "ok" }));
    let seed_path: Value = server.get("/health", None).json().unwrap();
    assert_eq!(seed_path, public, "the seed's health path answers the same");
    let user = server.user("someone@example.com");
    let as_user: Value = server.get("/healthz", Some(&user)).json().unwrap();
    assert_eq!(as_user, json!({ "status": "ok" }), "details are for administrators");
    let details = server.health();
    assert!(
        details["store"].is_object() && details["sandbox"].is_object() && details["runtimes"].is_object(),
        "{details}"
    );
    assert_eq!(server.get("/metrics", None).status(), 401);
    assert_eq!(server.get("/metrics", Some("wrong")).status(), 401);
    let metrics = server.get("/metrics", Some("scrape-secret-123"));
    assert_eq!(metrics.status(), 200);
    assert!(metrics.text().unwrap().contains("containerpub_logins_total"));
}
