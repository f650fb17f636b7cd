use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{archive, code, example, Server};

const ECHO: &str = r#"
def handler(body, request):
    print("got", request["method"], request["path"])
    return {"statusCode": 202, "headers": {"x-echo": "yes"}, "body": {
        "method": request["method"], "path": request["path"], "query": request["query"],
        "header": request["headers"].get("x-custom"), "auth": request["headers"].get("authorization"),
        "body": body}}
"#;

const SLOW: &str = "import time\ndef handler(body):\n    time.sleep(body.get('seconds', 0))\n    return {'slept': body.get('seconds', 0)}\n";
const LOOP: &str = "def handler(body):\n    while True:\n        pass\n";
const HOG: &str = "def handler(body):\n    hog = []\n    while True:\n        hog.append(bytearray(8 << 20))\n";
const THROWS: &str = "def handler(body):\n    raise ValueError('no such thing')\n";

fn function_urls_outcomes_logs_and_metrics(server: Server) {
    let ada = server.user("ada@example.com");

    // Method, path, query, headers and body reach the function; its envelope comes back.
    assert_eq!(server.deploy(&ada, "echo", archive(&[("main.py", ECHO)]), &[]).0, 201);
    let response = server
        .client
        .put(server.url("/fn/echo/items/42?color=red&size=x%20l"))
        .bearer_auth(&ada)
        .header("x-custom", "hello")
        .json(&json!({ "a": 1 }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["x-echo"], "yes");
    assert!(response.headers()["x-invocation-id"].to_str().unwrap().starts_with("inv_"));
    let timing = response.headers()["server-timing"].to_str().unwrap().to_string();
    assert!(timing.contains("queue;dur=") && timing.contains("exec;dur="), "{timing}");
    let echoed: Value = response.json().unwrap();
    assert_eq!(echoed["method"], "PUT");
    assert_eq!(echoed["path"], "/items/42");
    assert_eq!(echoed["query"], json!({ "color": "red", "size": "x l" }));
    assert_eq!(echoed["header"], "hello");
    assert_eq!(echoed["auth"], Value::Null, "the platform credential is not passed to a private function");
    assert_eq!(echoed["body"], json!({ "a": 1 }));

    // The seed's invoke call.
    let invoked = server.post_json(
        "/api/functions/echo/invoke",
        Some(&ada),
        &json!({ "body": { "b": 2 }, "query": { "q": "1" } }),
    );
    assert_eq!(invoked.status(), 202);
    let invoked: Value = invoked.json().unwrap();
    assert_eq!((invoked["body"].clone(), invoked["query"].clone()), (json!({ "b": 2 }), json!({ "q": "1" })));
    assert_eq!(invoked["method"], "POST");
    // All of its fields: a method and headers too, with a platform credential among them removed.
    let invoked: Value = server
        .post_json(
            "/api/functions/echo/invoke",
            Some(&ada),
            &json!({ "method": "delete", "headers": { "X-Custom": "seed", "Authorization": format!("Bearer {ada}") } }),
        )
        .json()
        .unwrap();
    assert_eq!(
        (&invoked["method"], &invoked["header"], &invoked["auth"]),
        (&json!("DELETE"), &json!("seed"), &Value::Null)
    );
    let unknown = server.post_json("/api/functions/echo/invoke", Some(&ada), &json!({ "name": "Ada" }));
    assert_eq!(unknown.status(), 400, "a bare body is refused, not taken for the request: wrap it in {{\"body\": …}}");
    let bad_method = server.post_json("/api/functions/echo/invoke", Some(&ada), &json!({ "method": "GE T" }));
    assert_eq!(bad_method.status(), 400);
    let malformed =
        server.client.post(server.url("/api/functions/echo/invoke")).bearer_auth(&ada).body("{oops").send().unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(server.post_json("/fn/nothing-here", Some(&ada), &json!({})).status(), 404);

    // One status and code per outcome.
    assert_eq!(server.deploy(&ada, "loop", archive(&[("main.py", LOOP)]), &[("timeout_ms", "300")]).0, 201);
    let looped = server.post_json("/fn/loop", Some(&ada), &json!({}));
    assert_eq!(looped.status(), 504);
    assert_eq!(looped.headers()["x-containerpub-error"], "timeout");
    assert_eq!(code(&looped.json().unwrap()), "timeout");
    assert_eq!(server.deploy(&ada, "hog", archive(&[("main.py", HOG)]), &[("memory_mb", "48")]).0, 201);
    let hogged = server.post_json("/fn/hog", Some(&ada), &json!({}));
    assert_eq!(hogged.status(), 507);
    assert_eq!(code(&hogged.json().unwrap()), "memory_limit");
    assert_eq!(server.deploy(&ada, "throws", archive(&[("main.py", THROWS)]), &[]).0, 201);
    let thrown = server.post_json("/fn/throws", Some(&ada), &json!({}));
    assert_eq!(thrown.status(), 500);
    let thrown: Value = thrown.json().unwrap();
    assert_eq!(
        (code(&thrown), thrown["error"]["function_error"]["type"].as_str()),
        ("function_error", Some("ValueError"))
    );

    // Queue full: one slot, one waiting place; the third concurrent call is refused at once.
    assert_eq!(server.deploy(&ada, "slow", archive(&[("main.py", SLOW)]), &[("max_concurrency", "1")]).0, 201);
    let statuses: Vec<(u16, Option<String>)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let (server, ada) = (&server, &ada);
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(100 * i));
                    let response = server.post_json("/fn/slow", Some(ada), &json!({ "seconds": 1 }));
                    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                    (response.status().as_u16(), retry)
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    let mut codes: Vec<u16> = statuses.iter().map(|(status, _)| *status).collect();
    codes.sort();
    assert_eq!(codes, vec![200, 200, 429], "{statuses:?}");
    assert!(statuses.iter().any(|(status, retry)| *status == 429 && retry.is_some()), "429 carries Retry-After");

    // Logs (NDJSON, then following as SSE) and invocations.
    std::thread::sleep(Duration::from_millis(300)); // records are written in batches
    let logs = server.get("/api/functions/echo/logs?limit=10", Some(&ada)).text().unwrap();
    let lines: Vec<Value> = logs.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert!(lines.iter().any(|line| line["message"] == "got PUT /items/42" && line["stream"] == "stdout"), "{logs}");
    let history: Value = server.get("/api/functions/loop/invocations", Some(&ada)).json().unwrap();
    let first = &history["invocations"][0];
    assert_eq!(first["outcome"], "timeout");
    assert!(first["duration_ms"].as_f64().unwrap() >= 250.0, "{first}");
    assert!(first["cold"].is_boolean() && first["queue_ms"].is_number());
    let echo_history: Value = server.get("/api/functions/echo/invocations?limit=1", Some(&ada)).json().unwrap();
    assert!(echo_history["invocations"][0]["peak_memory_bytes"].as_i64().unwrap_or(0) > 0, "{echo_history}");

    let follow = server
        .client
        .get(server.url("/api/functions/echo/logs?follow=true&since=1m"))
        .bearer_auth(&ada)
        .header("accept", "text/event-stream")
        .send()
        .unwrap();
    assert_eq!(follow.headers()["content-type"], "text/event-stream");
    let mut reader = BufReader::new(follow);
    let caller = std::thread::spawn({
        let (url, ada) = (server.url("/fn/echo/followed"), ada.clone());
        move || {
            std::thread::sleep(Duration::from_millis(300));
            reqwest::blocking::Client::new().post(url).bearer_auth(ada).body("{}").send().unwrap().status()
        }
    });
    let mut seen = String::new();
    while !seen.contains("got POST /followed") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "the stream ended early: {seen}");
        seen.push_str(&line);
    }
    assert_eq!(caller.join().unwrap(), 202);
    assert!(seen.contains("data: {"), "{seen}");

    // Health and metrics.
    let health: Value = server.health();
    assert_eq!(health["status"], "ok");
    assert!(health["memory_enforcement"].is_string() && health["runtimes"]["python"].is_string(), "{health}");
    // Anyone sees the server's totals; the series by function are an administrator's.
    let public = server.get("/metrics", None).text().unwrap();
    assert!(public.contains("containerpub_invocations_total{outcome=\"timeout\"}"), "{public}");
    assert!(!public.contains("function=\""), "no function's name to anyone:\n{public}");
    let metrics = server.get("/metrics", Some(&server.admin)).text().unwrap();
    for expected in [
        "containerpub_invocations_total{function=\"loop\",outcome=\"timeout\"} 1",
        "containerpub_invocations_total{function=\"slow\",outcome=\"queue_full\"} 1",
        "containerpub_invocation_duration_seconds_bucket{function=\"echo\"",
        "containerpub_worker_kills_total{function=\"hog\"",
        "containerpub_cold_starts_total",
        "containerpub_queue_depth",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from:\n{metrics}");
    }

    // The other examples answer as documented.
    assert_eq!(
        server.deploy(&ada, "http-py", example("examples/python/envelope-function"), &[("public", "true")]).0,
        201
    );
    let text = server.client.get(server.url("/fn/http-py/hi?name=Bo")).send().unwrap();
    assert_eq!(text.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(text.text().unwrap(), "Hello, Bo! You asked for /hi\n");
}
both_stores!(function_urls_outcomes_logs_and_metrics);
