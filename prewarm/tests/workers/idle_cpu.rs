//! An idle worker uses no CPU: what a handler leaves running after it answers (a Python thread, a
//! Node worker thread) is frozen with the worker once it has been idle for `idle_freeze_after`
//! (200 ms), until the next call thaws it. Measured from the worker's own CPU time in `/proc`,
//! not by timing.

use std::time::Duration;

use prewarm::Outcome;

use crate::fixture::Fixture;

/// A handler that starts a thread spinning forever on its first call, then answers at once.
const LEAVES_A_THREAD_SPINNING: &str = r#"
import threading

started = []

def spin():
    while True:
        pass

def handler(body):
    if not started:
        threading.Thread(target=spin, daemon=True).start()
        started.append(True)
    return {"threads": threading.active_count()}
"#;

const NODE_LEAVES_A_WORKER_THREAD_SPINNING: &str = r#"
const { Worker } = require('worker_threads');
let started = false;
exports.handler = async () => {
  if (!started) {
    new Worker('for (;;) {}', { eval: true });
    started = true;
  }
  return { started };
};
"#;

/// The runtime of a worker: in the sandbox, the child of the wrapper that stays behind as its
/// monitor (the pid an invocation names); without it, the process itself.
fn runtime_of(pid: i32) -> i32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    children.split_whitespace().next().and_then(|child| child.parse().ok()).unwrap_or(pid)
}

/// CPU seconds (user + system, every thread) a process used so far.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (in parentheses, which may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf takes an integer.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// How much CPU the worker used over a second after its call answered.
async fn idle_cpu_after_a_call(fixture: &Fixture, key: &str) -> f64 {
    let call = fixture.call(key, "{}").await;
    assert_eq!(call.outcome, Outcome::Ok, "{call:?}");
    let pid = call.worker_pid.unwrap();
    let runtime = runtime_of(pid);
    // Past `idle_freeze_after` and a reaper tick (every 50 ms in the fixture).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = cpu_seconds(runtime);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = cpu_seconds(runtime) - before;
    // And the next call still answers: the worker runs again.
    let again = fixture.call(key, "{}").await;
    assert_eq!((again.outcome, again.worker_pid), (Outcome::Ok, Some(pid)), "{again:?}");
    idle
}

#[tokio::test]
async fn threads_a_handler_leaves_running_use_no_cpu_while_the_worker_is_idle() {
    let fixture = Fixture::new();
    if !crate::fixture::freezes_idle_workers(&fixture, "idle workers using no CPU") {
        return;
    }
    fixture.prewarm.prepare(fixture.python("spinner", LEAVES_A_THREAD_SPINNING)).await.unwrap();
    fixture.prewarm.prepare(fixture.node("node-spinner", NODE_LEAVES_A_WORKER_THREAD_SPINNING)).await.unwrap();
    for key in ["spinner@1", "node-spinner@1"] {
        let idle = idle_cpu_after_a_call(&fixture, key).await;
        assert!(idle < 0.05, "{key}: the idle worker used {idle:.2} s of CPU in 1 s");
    }
}

#[tokio::test]
async fn without_freezing_the_same_threads_keep_a_core_busy() {
    // The control: the measurement sees the spinning thread when nothing freezes it.
    let fixture = Fixture::with(|config| config.freeze_idle_workers = false);
    fixture.prewarm.prepare(fixture.python("spinner", LEAVES_A_THREAD_SPINNING)).await.unwrap();
    let idle = idle_cpu_after_a_call(&fixture, "spinner@1").await;
    assert!(idle > 0.5, "the spinning thread used only {idle:.2} s of CPU in 1 s");
}
