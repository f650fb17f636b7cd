//! A function's answer goes out from the platform's origin: its cookies stay with it, its
//! framing is the server's, and with `[http] functions_domain` it has a host name of its own.

use serde_json::Value;

use crate::harness::{archive, code, Backend, Server};

/// Answers with whatever envelope the query's `case` names.
const ANSWERS_PY: &str = r#"
import json

def handler(body):
    case = (body or {}).get("case", "cookie")
    if case == "cookie":
        return {"statusCode": 200, "headers": {"Set-Cookie": "stolen=1; Path=/; Domain=127.0.0.1; HttpOnly"}, "body": "ok"}
    if case == "no-content":
        return {"statusCode": 204, "headers": {"Content-Length": "43", "Connection": "close"}, "body": json.dumps({"x": 1})}
    if case == "early":
        return {"statusCode": 101, "headers": {"Upgrade": "websocket"}, "body": ""}
    return {"statusCode": 200, "body": "the function"}
"#;

#[test]
fn tenants_share_no_cookies_and_functions_can_have_their_own_host_names() {
    let env = [("CONTAINERPUB_FUNCTIONS_DOMAIN", "fn.test".to_string())];
    let server = Server::start_with_env(Backend::Sqlite, &env).unwrap();
    let mallory = server.user("mallory@example.com");
    let fields = [("public", "true")];
    let (status, deployed) = server.deploy(&mallory, "jar", archive(&[("main.py", ANSWERS_PY)]), &fields);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["host"], "jar.fn.test", "the deploy says where the function's own host is");
    let listed: Value = server.get("/api/functions/jar", Some(&mallory)).json().unwrap();
    assert_eq!(listed["host"], "jar.fn.test", "{listed}");
    let get = |host: Option<&str>, path: &str| {
        let (path, case) = path.split_once("?case=").unwrap_or((path, "cookie"));
        let mut request = server.client.post(server.url(path)).json(&serde_json::json!({ "case": case }));
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request.send().unwrap()
    };

    // On the shared origin, a cookie for `/` is kept to the function's own prefix, without Domain.
    let shared = get(None, "/fn/jar?case=cookie");
    assert_eq!(shared.status(), 200);
    assert_eq!(shared.headers()["set-cookie"], "stolen=1; Path=/fn/jar; HttpOnly");
    // On its own host name it keeps its path (the host is its own), still without Domain.
    let own = get(Some("jar.fn.test"), "/?case=cookie");
    assert_eq!(own.status(), 200);
    assert_eq!(own.headers()["set-cookie"], "stolen=1; Path=/; HttpOnly");
    // The whole path is the function's there: the API is never served on a function's host.
    let api_path = get(Some("jar.fn.test:8080"), "/api/functions?case=path");
    assert_eq!(api_path.text().unwrap(), "the function");
    for (host, expected) in [("fn.test", "NAME.fn.test"), ("a.jar.fn.test", "names no function")] {
        let refused = get(Some(host), "/");
        assert_eq!(refused.status(), 404);
        let body: Value = refused.json().unwrap();
        assert!(body["error"]["message"].as_str().unwrap().contains(expected), "{host}: {body}");
    }
    // The API's host still serves the API.
    assert_eq!(server.get("/api/functions", Some(&mallory)).status(), 200);

    // A 204 goes out without its body or the function's framing headers.
    let empty = get(None, "/fn/jar?case=no-content");
    assert_eq!(empty.status(), 204);
    assert!(empty.headers().get("content-length").is_none(), "{:?}", empty.headers());
    assert!(empty.headers().get("connection").is_none_or(|value| value != "close"), "{:?}", empty.headers());
    assert!(empty.bytes().unwrap().is_empty());
    // A 1xx cannot end a call: the caller gets a final answer saying so.
    let early = get(None, "/fn/jar?case=early");
    assert_eq!(early.status(), 502);
    let body: Value = early.json().unwrap();
    assert_eq!(code(&body), "invalid_output", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("a 1xx cannot end a call"), "{body}");
}
