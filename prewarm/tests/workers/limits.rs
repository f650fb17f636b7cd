//! Deadlines, memory caps and the pids cap, with real processes and (where writable) real cgroups.

use std::time::{Duration, Instant};

use prewarm::{Enforcement, KillReason, Outcome};

use crate::fixture::{assert_process_gone, real_cgroups_writable, skip, Fixture};

const SPIN_PY: &str = r#"
import os
def handler(body):
    if body.get("spin"):
        while True:
            pass
    return {"pid": os.getpid()}
"#;

#[tokio::test]
async fn an_infinite_loop_is_killed_at_its_deadline_and_replaced() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("spin", SPIN_PY);
    spec.limits.timeout = Duration::from_millis(300);
    fixture.prewarm.prepare(spec).await.unwrap();
    let started = Instant::now();
    let timed_out = fixture.call("spin@1", r#"{"spin":true}"#).await;
    let took = started.elapsed();
    assert_eq!(timed_out.outcome, Outcome::Timeout, "{timed_out:?}");
    assert_eq!(timed_out.error.as_ref().unwrap().message, "the function did not finish within 300 ms");
    assert!(took < Duration::from_millis(400), "the caller had its timeout after {took:?} (deadline 300 ms + 100 ms)");
    assert_process_gone(timed_out.worker_pid.unwrap(), Duration::from_secs(3)).await;
    let next = fixture.call("spin@1", "{}").await;
    assert_eq!(next.outcome, Outcome::Ok);
    assert_ne!(next.worker_pid, timed_out.worker_pid);
    assert_eq!(fixture.prewarm.stats()[0].kills[KillReason::Timeout.as_str()], 1);
}

#[tokio::test]
async fn deadlines_have_millisecond_granularity() {
    let fixture = Fixture::new();
    let mut spec =
        fixture.node("quick", "exports.handler = (b) => new Promise((r) => setTimeout(() => r('late'), b.ms));");
    spec.limits.timeout = Duration::from_millis(40);
    fixture.prewarm.prepare(spec).await.unwrap();
    assert_eq!(fixture.call("quick@1", r#"{"ms":5}"#).await.outcome, Outcome::Ok);
    let started = Instant::now();
    assert_eq!(fixture.call("quick@1", r#"{"ms":400}"#).await.outcome, Outcome::Timeout);
    assert!(started.elapsed() < Duration::from_millis(140), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_killed_worker_leaves_no_descendant_behind() {
    // The sandbox refuses new processes outright (the hostile-tenant suite shows it); killing the
    // whole tree is the fence behind it, so it is checked where processes can be started.
    let fixture = Fixture::with(|config| config.sandbox.mode = prewarm::SandboxMode::Off);
    let source = r#"
import os, subprocess, time
def handler(body):
    child = subprocess.Popen(["sleep", "60"])
    print(child.pid, flush=True)
    time.sleep(60)
"#;
    let mut spec = fixture.python("parent", source);
    spec.limits.timeout = Duration::from_millis(500);
    fixture.prewarm.prepare(spec).await.unwrap();
    let invocation = fixture.call("parent@1", "{}").await;
    assert_eq!(invocation.outcome, Outcome::Timeout);
    let child: i32 =
        invocation.logs.iter().find_map(|line| line.text.parse().ok()).expect("the child's pid was logged");
    assert_process_gone(invocation.worker_pid.unwrap(), Duration::from_secs(3)).await;
    assert_process_gone(child, Duration::from_secs(3)).await;
}

const HOG_PY: &str = r#"
import os
def handler(body):
    if body.get("hog"):
        held = []
        while True:
            held.append(b"x" * (8 << 20))
    return {"pid": os.getpid()}
"#;

#[tokio::test]
async fn a_memory_hog_is_killed_by_its_cgroup_while_other_functions_keep_working() {
    if !real_cgroups_writable() {
        return skip("no writable cgroup hierarchy here (run as root on a host with cgroup v1 or delegated v2)");
    }
    let fixture = Fixture::new();
    assert_ne!(fixture.prewarm.enforcement().0, &Enforcement::Rlimit);
    let mut hog = fixture.python("hog", HOG_PY);
    hog.limits.memory_bytes = 64 << 20;
    fixture.prewarm.prepare(hog).await.unwrap();
    fixture.prewarm.prepare(fixture.python("bystander", SPIN_PY)).await.unwrap();

    let (hogged, bystander) = tokio::join!(fixture.call("hog@1", r#"{"hog":true}"#), fixture.call("bystander@1", "{}"));
    assert_eq!(hogged.outcome, Outcome::MemoryLimit, "{hogged:?}");
    assert_eq!(hogged.error.as_ref().unwrap().code, "memory_limit");
    assert_eq!(bystander.outcome, Outcome::Ok);
    assert_process_gone(hogged.worker_pid.unwrap(), Duration::from_secs(3)).await;
    let after = fixture.call("hog@1", "{}").await;
    assert_eq!(after.outcome, Outcome::Ok, "a fresh worker serves the next call");
    assert!(after.peak_memory_bytes.unwrap() < 64 << 20);
}

#[tokio::test]
async fn without_cgroups_the_rlimit_fallback_still_reports_a_memory_limit() {
    let fixture = Fixture::with(|config| config.limits_host.forced = Some("rlimit".into()));
    assert_eq!(fixture.prewarm.enforcement().0, &Enforcement::Rlimit);
    let mut hog = fixture.python("hog", HOG_PY);
    hog.limits.memory_bytes = 96 << 20;
    fixture.prewarm.prepare(hog).await.unwrap();
    let hogged = fixture.call("hog@1", r#"{"hog":true}"#).await;
    assert_eq!(hogged.outcome, Outcome::MemoryLimit, "{hogged:?}");
    let mut node_hog = fixture
        .node("nodehog", "exports.handler = () => { const a = []; for (;;) a.push(Buffer.alloc(8 << 20, 1)); };");
    node_hog.limits.memory_bytes = 128 << 20;
    fixture.prewarm.prepare(node_hog).await.unwrap();
    let node_hogged = fixture.call("nodehog@1", "{}").await;
    assert_eq!(node_hogged.outcome, Outcome::MemoryLimit, "{node_hogged:?}");
    let calm = fixture.call("hog@1", "{}").await;
    assert_eq!(calm.outcome, Outcome::Ok);
    // Read from the runtime itself: inside the sandbox that is the child of the wrapper's small
    // monitor process (about 1 MB), and an idle Python holds several times that.
    assert!(calm.peak_memory_bytes.unwrap() > 6 << 20, "{:?}", calm.peak_memory_bytes);
}

#[tokio::test]
async fn a_fork_bomb_is_contained_by_the_pids_cap() {
    if !real_cgroups_writable() {
        return skip("the pids cap needs a writable cgroup; rlimits cannot cap processes for root");
    }
    let fixture = Fixture::new();
    let source = r#"
import os, time
def handler(body):
    children = []
    for _ in range(2000):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    return {"forked": len(children), "children": children}
"#;
    let mut spec = fixture.python("bomb", source);
    spec.limits.max_pids = 32;
    fixture.prewarm.prepare(spec).await.unwrap();
    let invocation = fixture.call("bomb@1", "{}").await;
    assert_eq!(invocation.outcome, Outcome::Ok, "{invocation:?}");
    let result = invocation.result.unwrap();
    let forked = result["forked"].as_u64().unwrap();
    assert!(forked < 32, "the worker forked {forked} processes under a cap of 32");
    // The bystander still spawns and serves while the bomb's worker is full.
    fixture.prewarm.prepare(fixture.python("calm", SPIN_PY)).await.unwrap();
    assert_eq!(fixture.call("calm@1", "{}").await.outcome, Outcome::Ok);
    // Retiring the version kills the whole tree, not just the worker.
    fixture.prewarm.retire("bomb@1");
    for child in result["children"].as_array().unwrap() {
        assert_process_gone(child.as_i64().unwrap() as i32, Duration::from_secs(3)).await;
    }
}

#[tokio::test]
async fn shutdown_stops_every_worker_and_removes_the_cgroups() {
    let fixture = Fixture::new();
    fixture.prewarm.prepare(fixture.python("a", SPIN_PY)).await.unwrap();
    fixture.prewarm.prepare(fixture.node("b", "exports.handler = () => process.pid;")).await.unwrap();
    let pids =
        [fixture.call("a@1", "{}").await.worker_pid.unwrap(), fixture.call("b@1", "{}").await.worker_pid.unwrap()];
    let enforcement = fixture.prewarm.enforcement().0.clone();
    fixture.prewarm.shutdown(Duration::from_secs(2)).await;
    for pid in pids {
        assert_process_gone(pid, Duration::from_secs(3)).await;
    }
    match enforcement {
        Enforcement::CgroupV1 { memory_group_dir, pids_group_dir, .. } => {
            assert!(!memory_group_dir.exists() && !pids_group_dir.exists());
        }
        Enforcement::CgroupV2 { group_dir } => assert!(!group_dir.exists()),
        Enforcement::Rlimit => {}
    }
}
