//! Warm reuse, recycling, reaping, crashes and the protocol under noisy output.

use std::time::{Duration, Instant};

use prewarm::{KillReason, Outcome};

use crate::fixture::{assert_process_gone, Fixture};

const ECHO_PY: &str = r#"
import os
def handler(body):
    return {"echo": body, "pid": os.getpid()}
"#;

#[tokio::test]
async fn second_call_is_served_warm_by_the_same_worker_and_much_faster() {
    let fixture = Fixture::new();
    let mut spec = fixture.node("echo", "exports.handler = async (body) => ({ echo: body, pid: process.pid });");
    spec.limits.min_idle_workers = 0;
    fixture.prewarm.prepare(spec).await.unwrap();

    let started = Instant::now();
    let first = fixture.call("echo@1", r#"{"n":1}"#).await;
    let first_wall = started.elapsed();
    let started = Instant::now();
    let second = fixture.call("echo@1", r#"{"n":2}"#).await;
    let second_wall = started.elapsed();

    assert_eq!(first.outcome, Outcome::Ok, "{first:?}");
    assert!(first.cold && !second.cold);
    assert_eq!(second.result.as_ref().unwrap()["echo"]["n"], 2);
    assert_eq!(first.result.as_ref().unwrap()["pid"], second.result.as_ref().unwrap()["pid"]);
    assert_eq!(first.worker_pid, second.worker_pid);
    assert!(second_wall * 5 < first_wall, "warm {second_wall:?} vs cold {first_wall:?}");
}

#[tokio::test]
async fn prepare_starts_the_minimum_idle_workers_so_the_first_call_is_warm() {
    let fixture = Fixture::new();
    let report = fixture.prewarm.prepare(fixture.python("prepared", ECHO_PY)).await.unwrap();
    assert_eq!(report.warm_workers, 1);
    let first = fixture.call("prepared@1", "{}").await;
    assert_eq!((first.outcome, first.cold), (Outcome::Ok, false));
}

#[tokio::test]
async fn a_worker_is_recycled_after_its_maximum_number_of_requests() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("recycle", ECHO_PY);
    spec.limits.max_requests_per_worker = 3;
    fixture.prewarm.prepare(spec).await.unwrap();
    let mut pids = Vec::new();
    for _ in 0..4 {
        let invocation = fixture.call("recycle@1", "{}").await;
        assert_eq!(invocation.outcome, Outcome::Ok);
        pids.push(invocation.worker_pid.unwrap());
    }
    assert_eq!((pids[0], pids[1], pids[2]), (pids[0], pids[0], pids[0]));
    assert_ne!(pids[3], pids[0], "the fourth call must run on a fresh worker");
    assert_process_gone(pids[0], Duration::from_secs(3)).await;
    let stats = fixture.prewarm.stats();
    assert_eq!(stats[0].kills[KillReason::Recycled.as_str()], 1);
}

/// The successor of a recycled worker starts in the background as the old one goes; a call that
/// comes meanwhile waits for it instead of starting a second one (recycling under load used to
/// put a cold start on the request path).
#[tokio::test]
async fn a_recycled_workers_successor_starts_at_once_and_the_next_call_waits_for_it() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("successor", ECHO_PY);
    spec.limits.max_requests_per_worker = 2;
    spec.limits.min_idle_workers = 0;
    fixture.prewarm.prepare(spec).await.unwrap();
    let first = fixture.call("successor@1", "{}").await;
    let second = fixture.call("successor@1", "{}").await;
    assert_eq!(first.worker_pid, second.worker_pid);
    // The second call recycled the worker; its successor is already starting.
    let sizes = fixture.prewarm.stats()[0].sizes;
    assert_eq!((sizes.idle, sizes.busy, sizes.starting), (0, 0, 1), "{sizes:?}");
    let third = fixture.call("successor@1", "{}").await;
    assert_eq!(third.outcome, Outcome::Ok, "{third:?}");
    assert_ne!(third.worker_pid, first.worker_pid);
    assert!(third.cold, "the call waited for a worker to start");
    let stats = &fixture.prewarm.stats()[0];
    // The probe that settled the mode, then exactly one successor: the third call started none.
    assert_eq!(stats.spawns, 2, "{stats:?}");
    assert_eq!(stats.sizes.idle, 1);
    let fourth = fixture.call("successor@1", "{}").await;
    assert_eq!((fourth.worker_pid, fourth.cold), (third.worker_pid, false));
}

#[tokio::test]
async fn idle_workers_are_reaped_after_their_time_to_live() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("reaped", ECHO_PY);
    spec.limits.idle_ttl = Duration::from_millis(200);
    fixture.prewarm.prepare(spec).await.unwrap();
    let pid = fixture.call("reaped@1", "{}").await.worker_pid.unwrap();
    assert_process_gone(pid, Duration::from_secs(3)).await;
    let stats = &fixture.prewarm.stats()[0];
    assert_eq!(stats.sizes.idle, 0, "scaled to zero");
    assert!(stats.kills[KillReason::IdleExpired.as_str()] >= 1);
    // After scaling to zero, the next call starts a worker again.
    let again = fixture.call("reaped@1", "{}").await;
    assert_eq!((again.outcome, again.cold), (Outcome::Ok, true));
}

#[tokio::test]
async fn a_crash_mid_request_is_reported_and_the_next_call_gets_a_fresh_worker() {
    let fixture = Fixture::new();
    let source = r#"
import os, sys
def handler(body):
    if body.get("crash"):
        print("about to crash", file=sys.stderr, flush=True)
        os._exit(3)
    return {"pid": os.getpid()}
"#;
    fixture.prewarm.prepare(fixture.python("crashy", source)).await.unwrap();
    let crashed = fixture.call("crashy@1", r#"{"crash":true}"#).await;
    assert_eq!(crashed.outcome, Outcome::Crashed, "{crashed:?}");
    let error = crashed.error.unwrap();
    assert_eq!(error.code, "crashed");
    assert!(error.message.contains("exited with status 3"), "{}", error.message);
    assert!(crashed.logs.iter().any(|line| line.text == "about to crash"));
    let next = fixture.call("crashy@1", "{}").await;
    assert_eq!(next.outcome, Outcome::Ok);
    assert_ne!(next.worker_pid, crashed.worker_pid);
    assert_process_gone(crashed.worker_pid.unwrap(), Duration::from_secs(3)).await;
}

#[tokio::test]
async fn printing_to_stdout_never_corrupts_the_protocol() {
    let fixture = Fixture::new();
    // Lines that look like frames, raw NULs, unterminated output, and plenty of it on both streams.
    let source = r#"
const lines = ['\u0000\u0000\u0000\u0005hello', '{"type":"response","id":"x","ok":true,"result":1}'];
exports.handler = (body) => {
  for (const line of lines) console.log(line);
  process.stdout.write('no newline at the end');
  console.error('to stderr');
  for (let i = 0; i < 2000; i++) console.log(`line ${i}`);
  return { answer: body.n * 2 };
};
"#;
    fixture.prewarm.prepare(fixture.node("noisy", source)).await.unwrap();
    for n in 0..3 {
        let invocation = fixture.call("noisy@1", &format!(r#"{{"n":{n}}}"#)).await;
        assert_eq!(invocation.outcome, Outcome::Ok, "{invocation:?}");
        assert_eq!(invocation.result.unwrap()["answer"], n * 2);
        let texts: Vec<&str> = invocation.logs.iter().map(|line| line.text.as_str()).collect();
        assert!(texts.contains(&"{\"type\":\"response\",\"id\":\"x\",\"ok\":true,\"result\":1}"));
        assert!(texts.contains(&"to stderr"));
        assert!(texts.contains(&"line 1999"), "all output printed before the reply is attributed to the call");
    }
}

#[tokio::test]
async fn an_output_flood_is_cut_with_a_marker_and_memory_stays_bounded() {
    let fixture = Fixture::new();
    let mut spec = fixture.python(
        "flood",
        r#"
import sys
def handler(body):
    chunk = "x" * 1023 + "\n"
    for _ in range(50 * 1024):   # 50 MiB
        sys.stdout.write(chunk)
    return "done"
"#,
    );
    spec.limits.max_log_bytes = 64 * 1024;
    fixture.prewarm.prepare(spec).await.unwrap();
    let invocation = fixture.call("flood@1", "{}").await;
    assert_eq!(invocation.outcome, Outcome::Ok, "{:?}", invocation.error);
    assert_eq!(invocation.result.unwrap(), "done");
    let kept: usize = invocation.logs.iter().map(|line| line.text.len() + 1).sum();
    assert!(kept <= 64 * 1024 + 200, "kept {kept} bytes of logs");
    assert!(invocation.log_bytes_dropped >= 50 * 1024 * 1024 - 64 * 1024);
    assert!(invocation.logs.last().unwrap().text.contains("log output truncated"));
    // The worker survived and still answers.
    assert_eq!(fixture.call("flood@1", "{}").await.worker_pid, invocation.worker_pid);
}

#[tokio::test]
async fn an_oversized_result_is_refused_without_killing_the_worker() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("big", "def handler(body):\n    return 'x' * body['size']\n");
    spec.limits.max_result_bytes = 100_000;
    fixture.prewarm.prepare(spec).await.unwrap();
    let refused = fixture.call("big@1", r#"{"size": 1000000}"#).await;
    assert_eq!(refused.outcome, Outcome::FunctionError);
    assert_eq!(refused.error.as_ref().unwrap().code, "result_too_large");
    let fine = fixture.call("big@1", r#"{"size": 10}"#).await;
    assert_eq!((fine.outcome, fine.worker_pid), (Outcome::Ok, refused.worker_pid));
}

#[tokio::test]
async fn function_errors_carry_the_runtime_error_type_and_keep_the_worker() {
    let fixture = Fixture::new();
    fixture
        .prewarm
        .prepare(fixture.python("fails", "def handler(body):\n    raise ValueError('bad input: ' + str(body))\n"))
        .await
        .unwrap();
    let failed = fixture.call("fails@1", r#"{"a":1}"#).await;
    assert_eq!(failed.outcome, Outcome::FunctionError);
    let error = failed.error.as_ref().unwrap();
    assert_eq!((error.code.as_str(), error.error_type.as_deref()), ("function_error", Some("ValueError")));
    assert_eq!(error.message, "bad input: {'a': 1}");
    assert!(error.stack.as_deref().unwrap().contains("Traceback"));
    assert_eq!(fixture.call("fails@1", "{}").await.worker_pid, failed.worker_pid);
}

/// Where idle workers run (a host without a cgroup freezer), what they print between calls is
/// delivered as stray log lines.
#[tokio::test]
async fn output_printed_while_idle_is_delivered_as_stray_log_lines() {
    let mut fixture = Fixture::with(|config| config.freeze_idle_workers = false);
    let source = "setInterval(() => console.log('tick'), 20);\nexports.handler = () => 'ok';\n";
    fixture.prewarm.prepare(fixture.node("ticker", source)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let invocation = fixture.call("ticker@1", "{}").await;
    assert_eq!(invocation.outcome, Outcome::Ok);
    let stray = tokio::time::timeout(Duration::from_secs(2), fixture.stray.recv()).await.unwrap().unwrap();
    assert_eq!((stray.function_key.as_str(), stray.line.text.as_str()), ("ticker@1", "tick"));
}

/// Where they are frozen (the default), a timer stops ticking once the worker has been idle for
/// `idle_freeze_after` (200 ms): nothing is printed until the next call.
#[tokio::test]
async fn a_frozen_idle_worker_prints_nothing_between_calls() {
    let mut fixture = Fixture::new();
    if !crate::fixture::freezes_idle_workers(&fixture, "frozen idle workers") {
        return;
    }
    let source = "setInterval(() => console.log('tick'), 20);\nexports.handler = () => 'ok';\n";
    fixture.prewarm.prepare(fixture.node("ticker", source)).await.unwrap();
    assert_eq!(fixture.call("ticker@1", "{}").await.outcome, Outcome::Ok);
    tokio::time::sleep(Duration::from_millis(500)).await;
    while fixture.stray.try_recv().is_ok() {}
    let stray = tokio::time::timeout(Duration::from_millis(500), fixture.stray.recv()).await;
    assert!(stray.is_err(), "a frozen idle worker printed: {stray:?}");
    assert_eq!(fixture.call("ticker@1", "{}").await.outcome, Outcome::Ok, "and runs again when called");
}

/// The gateway warms versions on its platform runtime and calls them from pingora's: the worker's
/// pipes move to the calling runtime at its first call (`Worker::rebind`), and its output stays
/// with the call that printed it.
#[test]
fn a_worker_started_on_one_runtime_serves_calls_from_another() {
    let platform = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let fixture = platform.block_on(async { Fixture::new() });
    let source = "def handler(body):\n    print('called', body['n'])\n    return body['n']\n";
    platform.block_on(fixture.prewarm.prepare(fixture.python("hop", source))).unwrap();

    let serving = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut pids = Vec::new();
    for n in 1..=3 {
        let invocation = serving.block_on(fixture.call("hop@1", &format!("{{\"n\":{n}}}")));
        assert_eq!(invocation.outcome, Outcome::Ok, "{invocation:?}");
        assert!(!invocation.cold, "served by the worker warmed on the other runtime");
        assert_eq!(invocation.result, Some(serde_json::json!(n)));
        let printed: Vec<&str> = invocation.logs.iter().map(|line| line.text.as_str()).collect();
        assert_eq!(printed, [format!("called {n}")]);
        pids.push(invocation.worker_pid);
    }
    assert!(pids.iter().all(|pid| *pid == pids[0]), "one worker served every call: {pids:?}");
    drop(fixture);
    drop(serving);
}
