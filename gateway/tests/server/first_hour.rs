//! What a newcomer meets in the first hour: reads that show what was just done, function errors
//! that tell the caller what failed without showing the server's insides, and a quick stop.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{archive, code, Backend, Server};

const FAILING: &str = r#"
def handler(body):
    print("about to fail")
    raise ValueError("the order id is missing")
"#;

#[test]
fn logs_and_invocations_show_a_call_right_after_it() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let token = server.user("ada@example.com");
    let source = "def handler(body):\n    print('seen', body['n'])\n    return {'n': body['n']}\n";
    assert_eq!(server.deploy(&token, "echo", archive(&[("main.py", source)]), &[]).0, 201);
    for n in 0..5 {
        assert_eq!(server.post_json("/fn/echo", Some(&token), &json!({ "n": n })).status(), 200);
        // No pause: the read waits for what the recorder had accepted.
        let logs = server.get("/api/functions/echo/logs?limit=100", Some(&token)).text().unwrap();
        assert!(logs.contains(&format!("\"message\":\"seen {n}\"")), "call {n}: {logs}");
        let history: Value = server.get("/api/functions/echo/invocations?limit=100", Some(&token)).json().unwrap();
        assert_eq!(history["invocations"].as_array().unwrap().len(), n + 1, "call {n}: {history}");
    }
}

#[test]
fn a_function_error_tells_the_caller_what_failed_and_the_owner_where() {
    let Some(server) = Server::start(Backend::Sqlite) else { return };
    let owner = server.user("owner@example.com");
    let (status, _) = server.deploy(&owner, "fails", archive(&[("main.py", FAILING)]), &[("public", "true")]);
    assert_eq!(status, 201);
    let data_dir = server.data_dir.path().display().to_string();

    // Anyone: the type and the message, no trace, no server path.
    let anonymous = server.post_json("/fn/fails", None, &json!({}));
    assert_eq!(anonymous.status(), 500);
    let text = anonymous.text().unwrap();
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(code(&body), "function_error");
    assert_eq!(body["error"]["function_error"], json!({ "type": "ValueError", "message": "the order id is missing" }));
    for leak in ["Traceback", "/fn/", "adapter", &data_dir, "/containerpub/"] {
        assert!(!text.contains(leak), "{leak:?} shown to anyone: {text}");
    }

    // The owner: the trace too, its paths relative to the function.
    let owned: Value = server.post_json("/fn/fails", Some(&owner), &json!({})).json().unwrap();
    let stack = owned["error"]["function_error"]["stack"].as_str().unwrap_or_default().to_string();
    assert!(stack.contains("File \"main.py\", line 4") && stack.contains("ValueError"), "{stack}");
    assert!(!stack.contains("/fn/") && !stack.contains(&data_dir), "{stack}");

    // And in the function's logs, on stderr.
    let logs: Vec<Value> = server
        .get("/api/functions/fails/logs?limit=100", Some(&owner))
        .text()
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(logs.iter().any(|line| line["message"] == "about to fail"), "{logs:?}");
    assert!(
        logs.iter()
            .any(|line| line["stream"] == "stderr"
                && line["message"].as_str().unwrap().contains("File \"main.py\", line 4")),
        "{logs:?}"
    );
}

#[test]
fn an_idle_server_stops_within_a_second_of_sigterm() {
    let Some(mut server) = Server::start(Backend::Sqlite) else { return };
    let token = server.user("ada@example.com");
    let source = "def handler(body):\n    return {'ok': True}\n";
    assert_eq!(server.deploy(&token, "idle", archive(&[("main.py", source)]), &[]).0, 201);
    assert_eq!(server.post_json("/fn/idle", Some(&token), &json!({})).status(), 200);
    let started = Instant::now();
    let status = server.stop();
    let took = started.elapsed();
    assert_eq!(status, Some(0), "{}", server.log());
    assert!(took < Duration::from_secs(1), "SIGTERM with nothing in flight took {took:?}:\n{}", server.log());
}
