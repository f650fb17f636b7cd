//! The seed's `main()`-only functions: one process per call, the request in the environment.

use std::time::{Duration, Instant};

use prewarm::{EntryMode, LogStream, Outcome, Runtime};

use crate::fixture::{assert_process_gone, Fixture};

const MAIN_PY: &str = r#"
import json, os, sys, time
data = json.loads(os.environ["FUNCTION_INPUT"])
print("starting", os.environ["HTTP_METHOD"])
print("to stderr", file=sys.stderr)
if data["body"].get("sleep"):
    time.sleep(30)
if data["body"].get("fail"):
    sys.exit(4)
print(json.dumps({"hello": data["body"].get("name"), "query": data["query"], "pid": os.getpid()}))
"#;

#[tokio::test]
async fn the_last_stdout_line_is_the_result_and_the_rest_are_logs() {
    let fixture = Fixture::new();
    let spec = fixture.function("main-only", Runtime::Python, EntryMode::Main, &[("main.py", MAIN_PY)]);
    let report = fixture.prewarm.prepare(spec).await.unwrap();
    assert_eq!(report.warm_workers, 0, "oneshot functions keep no workers");
    let mut event = prewarm::InvocationEvent { method: "POST".into(), path: "/".into(), ..Default::default() }
        .with_raw_body(br#"{"name":"Ada"}"#);
    event.query.insert("lang".into(), "en".into());
    let first = fixture.call_event("main-only@1", event.clone()).await;
    assert_eq!(first.outcome, Outcome::Ok, "{first:?}");
    let result = first.result.unwrap();
    assert_eq!((result["hello"].as_str(), result["query"]["lang"].as_str()), (Some("Ada"), Some("en")));
    // Two pipes: the order across stdout and stderr is best effort, so compare by stream.
    let lines = |stream| {
        first.logs.iter().filter(|line| line.stream == stream).map(|line| line.text.as_str()).collect::<Vec<_>>()
    };
    assert_eq!(lines(LogStream::Stdout), vec!["starting POST"]);
    assert_eq!(lines(LogStream::Stderr), vec!["to stderr"]);
    assert!(first.cold);
    let second = fixture.call_event("main-only@1", event).await;
    // Inside the sandbox every run is pid 1 of its own namespace: compare the host's pids.
    assert_ne!(second.worker_pid, first.worker_pid, "one process per invocation");
    assert_process_gone(first.worker_pid.unwrap(), Duration::from_secs(2)).await;
}

#[tokio::test]
async fn oneshot_failures_timeouts_and_garbage_have_their_outcomes() {
    let fixture = Fixture::new();
    let mut spec = fixture.function("main-bad", Runtime::Python, EntryMode::Main, &[("main.py", MAIN_PY)]);
    spec.limits.timeout = Duration::from_millis(300);
    fixture.prewarm.prepare(spec).await.unwrap();
    let failed = fixture.call("main-bad@1", r#"{"fail":true}"#).await;
    assert_eq!(failed.outcome, Outcome::FunctionError);
    assert!(failed.error.unwrap().message.starts_with("the function exited with status 4: to stderr"));
    let started = Instant::now();
    let slow = fixture.call("main-bad@1", r#"{"sleep":true}"#).await;
    assert_eq!(slow.outcome, Outcome::Timeout);
    assert!(started.elapsed() < Duration::from_millis(400));
    assert_process_gone(slow.worker_pid.unwrap(), Duration::from_secs(2)).await;

    let garbage =
        fixture.function("main-garbage", Runtime::Python, EntryMode::Main, &[("main.py", "print('not json')\n")]);
    fixture.prewarm.prepare(garbage).await.unwrap();
    let invalid = fixture.call("main-garbage@1", "{}").await;
    assert_eq!(invalid.outcome, Outcome::Crashed);
    assert_eq!(invalid.error.unwrap().code, "invalid_output");
}

#[tokio::test]
async fn a_request_too_large_for_the_environment_is_refused_clearly() {
    let fixture = Fixture::new();
    let spec = fixture.function("main-big", Runtime::Python, EntryMode::Main, &[("main.py", MAIN_PY)]);
    fixture.prewarm.prepare(spec).await.unwrap();
    let body = format!(r#"{{"name":"{}"}}"#, "x".repeat(200_000));
    let refused = fixture.call("main-big@1", &body).await;
    assert_eq!(refused.outcome, Outcome::FunctionError);
    assert_eq!(refused.error.unwrap().code, "request_too_large");
}
