//! The seed's http-function example, in Node and Python: it calls an outside API with a timeout
//! and handles failure, against a test host this test starts (never an outside address). The
//! Dart one runs in `scripts/dart-e2e` where the SDK is installed.

use reqwest::blocking::Response;
use serde_json::{json, Value};

use crate::harness::{example, skip, Backend, Server};
use crate::test_host::TestHost;

fn call(server: &Server, token: &str, name: &str, body: Value) -> (u16, Option<String>, Value) {
    answer(server.post_json(&format!("/fn/{name}"), Some(token), &body))
}

fn answer(response: Response) -> (u16, Option<String>, Value) {
    let status = response.status().as_u16();
    let platform_error = response.headers().get("x-containerpub-error").map(|code| code.to_str().unwrap().to_string());
    (status, platform_error, response.json().unwrap())
}

#[test]
fn the_http_function_calls_an_outside_api_with_a_timeout_and_handles_failure() {
    if !nix::unistd::geteuid().is_root() {
        skip("not root: the test host lives in a network namespace (ip netns needs root)");
        return;
    }
    let server = Server::start(Backend::Sqlite).unwrap();
    let host = TestHost::start();
    let ada = server.user("ada@example.com");
    for (runtime, name) in [("node", "fetch-node"), ("python", "fetch-py")] {
        let directory = format!("examples/{runtime}/http-function");
        let (status, deployed) = server.deploy(&ada, name, example(&directory), &[("timeout_ms", "1500")]);
        assert_eq!(status, 201, "{deployed}");
        assert_eq!(deployed["entry"]["mode"], "handler", "{deployed}");

        // The outside answers: what came back.
        let (status, error, body) = call(&server, &ada, name, json!({ "url": host.url("/") }));
        assert_eq!((status, error), (200, None), "{runtime}: {body}");
        assert_eq!(body["success"], true, "{runtime}: {body}");
        assert_eq!(body["status"], 200, "{runtime}: {body}");
        assert_eq!(body["bodyLength"], "test-host".len(), "{runtime}: {body}");
        assert!(body["contentType"].as_str().unwrap_or("").starts_with("text/plain"), "{runtime}: {body}");

        // The seed's other form: the URL in the query.
        let url = server.url(&format!("/fn/{name}?url={}", host.url("/from-query")));
        let (status, _, body) = answer(server.client.get(url).bearer_auth(&ada).send().unwrap());
        assert_eq!((status, &body["success"]), (200, &json!(true)), "{runtime}: {body}");

        // Too slow: the function's own timeout answers 504 with its message, well before the
        // platform's deadline (not the platform's `timeout` error).
        let slow = json!({ "url": host.url("/slow"), "timeout_ms": 300 });
        let (status, error, body) = call(&server, &ada, name, slow);
        assert_eq!((status, error), (504, None), "{runtime}: {body}");
        assert_eq!(body["error"], "timeout", "{runtime}: {body}");
        assert!(body["message"].as_str().unwrap().contains("within 300 ms"), "{runtime}: {body}");

        // Asking for more than the deadline leaves: the timeout shrinks to fit inside it, so the
        // caller still gets the function's answer, not a killed worker.
        let greedy = json!({ "url": host.url("/slow"), "timeout_ms": 60_000 });
        let (status, error, body) = call(&server, &ada, name, greedy);
        assert_eq!((status, error), (504, None), "{runtime}: {body}");
        assert_eq!(body["error"], "timeout", "{runtime}: {body}");

        // Nobody there (a closed port) and a refused address (the server's own host): 502.
        for unreachable in [format!("http://{}:{}/", host.address, host.port + 1), server.url("/healthz")] {
            let (status, error, body) = call(&server, &ada, name, json!({ "url": unreachable }));
            assert_eq!((status, error), (502, None), "{runtime} {unreachable}: {body}");
            assert_eq!(body["error"], "unreachable", "{runtime}: {body}");
        }

        // No URL: the caller's mistake, said as such.
        let (status, _, body) = call(&server, &ada, name, json!({ "url": "file:///etc/passwd" }));
        assert_eq!(status, 400, "{runtime}: {body}");
        assert_eq!(body["success"], false, "{runtime}: {body}");

        // Failures were logged by the function, and the worker that served them is still warm.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let logs = server.get(&format!("/api/functions/{name}/logs?since=10m"), Some(&ada)).text().unwrap();
        assert!(logs.contains("timed out after 300 ms"), "{runtime}: {logs}");
        let info: Value = server.get(&format!("/api/functions/{name}"), Some(&ada)).json().unwrap();
        assert_eq!(
            info["pool"]["spawns"], 1,
            "{runtime}: every call served by the one worker started at deploy: {info}"
        );
    }
}
