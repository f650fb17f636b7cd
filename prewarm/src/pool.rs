//! The pool of one function version: idle workers, leasing, releasing, recycling, reaping.
//!
//! Invariants:
//! - a worker is either in `idle`, or owned by exactly one invocation (counted in `busy`), or being
//!   started (counted in `starting`), or being killed (counted nowhere);
//! - `idle + busy + starting <= max_workers`, and admission lets at most
//!   `min(max_concurrency, max_workers)` invocations in, so a lease never waits for a worker that
//!   nobody is starting;
//! - a worker that timed out, crashed, hit its memory cap, broke the protocol or served
//!   `max_requests_per_worker` invocations is never reused.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::limits::Enforcement;
use crate::logs::{LogCollector, LogStream};
use crate::outcome::{Invocation, InvocationError, Outcome};
use crate::protocol::encode_request;
use crate::runtime::EntryMode;
use crate::shape::Shape;
use crate::spec::FunctionSpec;
use crate::stack_paths::relative_stack;
use crate::worker::{RawReply, StartFailure, Worker, WorkerLaunch};
use crate::{InvocationRequest, Shared, StrayLogLine};

/// The most of a function error's message (and type name) kept; its stack trace keeps at most
/// the call's log budget.
const MAX_ERROR_MESSAGE_BYTES: usize = 16 << 10;

/// Why a worker was stopped, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KillReason {
    Timeout,
    MemoryLimit,
    Crashed,
    ProtocolError,
    Recycled,
    IdleExpired,
    Retired,
    StartFailed,
}

impl KillReason {
    pub const ALL: [KillReason; 8] = [
        KillReason::Timeout,
        KillReason::MemoryLimit,
        KillReason::Crashed,
        KillReason::ProtocolError,
        KillReason::Recycled,
        KillReason::IdleExpired,
        KillReason::Retired,
        KillReason::StartFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KillReason::Timeout => "timeout",
            KillReason::MemoryLimit => "memory_limit",
            KillReason::Crashed => "crashed",
            KillReason::ProtocolError => "protocol_error",
            KillReason::Recycled => "recycled",
            KillReason::IdleExpired => "idle_expired",
            KillReason::Retired => "retired",
            KillReason::StartFailed => "start_failed",
        }
    }
}

/// Lines a runtime prints when it dies of memory exhaustion (used when no cgroup can tell us).
const OUT_OF_MEMORY_MARKERS: [&str; 5] =
    ["heap out of memory", "Allocation failed", "MemoryError", "Out of Memory", "OutOfMemoryError"];

/// After a worker fails to start, further starts wait this long (doubling up to the maximum), so a
/// broken function answers quickly with the recorded error instead of spawning on every request.
const FIRST_START_BACKOFF: Duration = Duration::from_millis(500);
const MAX_START_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(crate) struct PoolCounters {
    pub spawns: AtomicU64,
    pub kills: [AtomicU64; 8],
    pub outcomes: [AtomicU64; 8],
    pub cold_starts: AtomicU64,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Worker>,
    busy: usize,
    /// Every start in flight, the background ones included.
    starting: usize,
    /// Starts in flight outside any invocation (refill, replacement of a recycled worker).
    background_starting: usize,
    /// Leases waiting for one of those instead of starting a worker of their own.
    awaiting_background: usize,
    retired: bool,
    start_backoff: Option<StartBackoff>,
}

#[derive(Debug, Clone)]
struct StartBackoff {
    until: Instant,
    delay: Duration,
    message: String,
}

#[derive(Debug)]
pub(crate) struct FunctionPool {
    pub spec: FunctionSpec,
    pub key: Arc<str>,
    /// The account admission counts this function's slots against.
    pub account: crate::admission::Account,
    /// How workers start, or the message every invocation gets when they cannot.
    pub launch: Result<WorkerLaunch, String>,
    state: Mutex<PoolState>,
    worker_available: Notify,
    pub counters: PoolCounters,
    drain: Mutex<DrainSample>,
    /// `cluster_share::rotation` of the function's name, computed once.
    pub rotation: u64,
}

/// The function's recent completion rate, sampled when a rejection needs it.
#[derive(Debug)]
struct DrainSample {
    at: Instant,
    completed: u64,
    per_second: f64,
}

/// How long a completion rate stays current.
const DRAIN_SAMPLE_PERIOD: Duration = Duration::from_millis(250);

/// Sizes of one pool, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolSizes {
    pub idle: usize,
    pub busy: usize,
    pub starting: usize,
}

// Lives for one `match` on the stack; boxing the worker would put an allocation on the hot path.
#[allow(clippy::large_enum_variant)]
enum LeaseStep {
    Take(Worker),
    Start,
    Wait,
    /// A background start nobody waits for is in flight: wait for it (or for a released worker).
    AwaitBackgroundStart,
    Fail(LeaseError),
}

/// A lease waiting for a background start (`PoolState::awaiting_background`), for as long as it lives.
struct AwaitingBackground<'a>(&'a FunctionPool);

impl Drop for AwaitingBackground<'_> {
    fn drop(&mut self) {
        self.0.lock().awaiting_background -= 1;
    }
}

enum LeaseError {
    Unavailable(String),
    Retired,
    WaitExceeded,
}

impl FunctionPool {
    pub fn new(spec: FunctionSpec, launch: Result<WorkerLaunch, String>) -> Arc<Self> {
        Arc::new(Self {
            key: spec.key.as_str().into(),
            account: crate::admission::Account {
                id: if spec.account.is_empty() { spec.key.as_str().into() } else { spec.account.as_str().into() },
                weight: if spec.account_weight > 0.0 { spec.account_weight } else { 1.0 },
            },
            rotation: crate::cluster_share::rotation(&spec.name),
            spec,
            launch,
            state: Mutex::new(PoolState::default()),
            worker_available: Notify::new(),
            counters: PoolCounters::default(),
            drain: Mutex::new(DrainSample { at: Instant::now(), completed: 0, per_second: 0.0 }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().expect("pool lock poisoned")
    }

    pub fn sizes(&self) -> PoolSizes {
        let state = self.lock();
        PoolSizes { idle: state.idle.len(), busy: state.busy, starting: state.starting }
    }

    /// Starts one worker outside any invocation (prepare and refill); start-up output is stray output.
    pub async fn start_worker(&self, shared: &Shared) -> Result<Worker, String> {
        match self.try_start_worker(shared).await {
            Ok(worker) => Ok(worker),
            // Nothing was started: no kill to count, no back-off to set.
            Err(StartFailure::Unavailable(message)) => Err(message),
            Err(failure) => Err(self.record_start_failure(failure)),
        }
    }

    /// [`Self::start_worker`], with the failure left for the caller to judge (prepare's load
    /// check tells a script from a broken module).
    pub(crate) async fn try_start_worker(&self, shared: &Shared) -> Result<Worker, StartFailure> {
        let launch = self.launch.as_ref().map_err(|message| StartFailure::Unavailable(message.clone()))?;
        let id = shared.next_worker_id.fetch_add(1, Ordering::Relaxed);
        let mut startup_logs = LogCollector::new(self.spec.limits.max_log_bytes, self.spec.limits.max_log_lines);
        self.counters.spawns.fetch_add(1, Ordering::Relaxed);
        let started = Worker::start(
            &shared.host,
            launch,
            self.spec.limits.worker_limits(),
            id,
            self.spec.limits.max_result_bytes,
            self.spec.limits.startup_timeout,
            &mut startup_logs,
        )
        .await;
        shared.send_stray_output(&self.key, startup_logs);
        started
    }

    pub(crate) fn record_start_failure(&self, failure: StartFailure) -> String {
        self.count_kill(KillReason::StartFailed);
        let message = failure.to_string();
        let mut state = self.lock();
        let delay = state
            .start_backoff
            .as_ref()
            .map_or(FIRST_START_BACKOFF, |previous| (previous.delay * 2).min(MAX_START_BACKOFF));
        state.start_backoff = Some(StartBackoff { until: Instant::now() + delay, delay, message: message.clone() });
        tracing::warn!(function = %self.spec.name, key = %self.key, %message, backoff_ms = delay.as_millis() as u64, "worker failed to start");
        message
    }

    /// Adds a started worker to the idle list (prepare and refill); kills it if the pool was retired.
    pub fn add_idle(&self, worker: Worker) {
        self.add_idle_locked(self.lock(), worker);
    }

    /// [`Self::add_idle`] with the lock already held (a background start updates its counts in
    /// the same critical section, so a lease never sees the start finished and its worker missing).
    fn add_idle_locked(&self, mut state: std::sync::MutexGuard<'_, PoolState>, worker: Worker) {
        if state.retired {
            drop(state);
            return self.dispose(worker, KillReason::Retired);
        }
        state.start_backoff = None;
        state.idle.push(worker);
        drop(state);
        self.worker_available.notify_one();
    }

    /// Takes an idle worker, or starts one; `Ok((worker, cold))`.
    async fn lease(&self, shared: &Shared, wait_until: Instant) -> Result<(Worker, bool), LeaseError> {
        // Set once this lease waited for a background start: a fresh worker it then gets made
        // the call wait for a start, so the call is cold.
        let mut awaited_start = false;
        loop {
            let notified = self.worker_available.notified();
            let (step, dead) = self.next_lease_step();
            self.dispose_all(dead, KillReason::Crashed);
            match step {
                LeaseStep::Take(worker) => {
                    worker.confinement.thaw();
                    let cold = awaited_start && worker.served == 0;
                    if cold {
                        self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
                    }
                    return Ok((worker, cold));
                }
                LeaseStep::Fail(error) => return Err(error),
                LeaseStep::Start => {
                    // Started by this task: its pipes are on this runtime already.
                    let started = self.start_worker(shared).await.map(|mut worker| {
                        worker.mark_rebound();
                        worker
                    });
                    return self.finish_start(started);
                }
                // Every slot is busy or starting: wait for a worker to come free.
                LeaseStep::Wait => {
                    if tokio::time::timeout_at(wait_until, notified).await.is_err() {
                        return Err(LeaseError::WaitExceeded);
                    }
                }
                LeaseStep::AwaitBackgroundStart => {
                    awaited_start = true;
                    // Counted off however the wait ends, the caller's task dropped included.
                    let _awaiting = AwaitingBackground(self);
                    if tokio::time::timeout_at(wait_until, notified).await.is_err() {
                        return Err(LeaseError::WaitExceeded);
                    }
                }
            }
        }
    }

    /// Decides, under the lock, what a lease does next; also returns idle workers found dead.
    fn next_lease_step(&self) -> (LeaseStep, Vec<Worker>) {
        let mut state = self.lock();
        let mut dead = Vec::new();
        if state.retired {
            return (LeaseStep::Fail(LeaseError::Retired), dead);
        }
        while let Some(mut worker) = state.idle.pop() {
            if worker.has_exited() {
                dead.push(worker);
                continue;
            }
            state.busy += 1;
            return (LeaseStep::Take(worker), dead);
        }
        if state.busy + state.starting >= self.spec.limits.max_workers.max(1) {
            return (LeaseStep::Wait, dead);
        }
        if state.awaiting_background < state.background_starting {
            state.awaiting_background += 1;
            return (LeaseStep::AwaitBackgroundStart, dead);
        }
        if let Some(backoff) = state.start_backoff.as_ref().filter(|backoff| Instant::now() < backoff.until) {
            return (LeaseStep::Fail(LeaseError::Unavailable(backoff.message.clone())), dead);
        }
        state.starting += 1;
        (LeaseStep::Start, dead)
    }

    fn finish_start(&self, started: Result<Worker, String>) -> Result<(Worker, bool), LeaseError> {
        let mut state = self.lock();
        state.starting -= 1;
        match started {
            Ok(worker) if !state.retired => {
                state.start_backoff = None;
                state.busy += 1;
                self.counters.cold_starts.fetch_add(1, Ordering::Relaxed);
                Ok((worker, true))
            }
            Ok(worker) => {
                drop(state);
                self.dispose(worker, KillReason::Retired);
                Err(LeaseError::Retired)
            }
            Err(message) => Err(LeaseError::Unavailable(message)),
        }
    }

    /// Returns a worker after an invocation: back to idle, or killed with `reason`.
    fn release(self: &Arc<Self>, shared: &Arc<Shared>, mut worker: Worker, kill: Option<KillReason>) {
        worker.served += 1;
        worker.last_used = Instant::now();
        let reason = kill
            .or_else(|| (worker.served >= self.spec.limits.max_requests_per_worker).then_some(KillReason::Recycled));
        let mut state = self.lock();
        state.busy -= 1;
        match reason {
            None if !state.retired => {
                state.idle.push(worker);
                drop(state);
                self.worker_available.notify_one();
            }
            reason => {
                let retired = state.retired;
                drop(state);
                self.dispose(worker, if retired { KillReason::Retired } else { reason.unwrap_or(KillReason::Retired) });
                if reason == Some(KillReason::Recycled) {
                    self.replace(shared);
                }
                if !retired {
                    self.refill(shared);
                }
            }
        }
    }

    /// Starts workers in the background until `min_idle_workers` are idle or starting again.
    pub fn refill(self: &Arc<Self>, shared: &Arc<Shared>) {
        let min_idle = self.spec.limits.min_idle_workers;
        self.start_in_background(shared, |state| state.idle.len() + state.starting < min_idle);
    }

    /// Starts a recycled worker's successor at once, in the background. A call that finds no idle
    /// worker meanwhile waits for it (or for a released worker) instead of paying a start of its
    /// own: under load, recycling no longer puts a cold start on the request path.
    fn replace(self: &Arc<Self>, shared: &Arc<Shared>) {
        self.start_in_background(shared, |_| true);
    }

    /// Starts one worker outside any invocation when `wanted` says so and the pool has room.
    fn start_in_background(self: &Arc<Self>, shared: &Arc<Shared>, wanted: impl FnOnce(&PoolState) -> bool) {
        if self.spec.entry.mode != EntryMode::Handler {
            return;
        }
        let mut state = self.lock();
        let total = state.idle.len() + state.busy + state.starting;
        let backing_off = state.start_backoff.as_ref().is_some_and(|backoff| Instant::now() < backoff.until);
        if state.retired || backing_off || !wanted(&state) || total >= self.spec.limits.max_workers {
            return;
        }
        state.starting += 1;
        state.background_starting += 1;
        drop(state);
        let (pool, shared) = (self.clone(), shared.clone());
        tokio::spawn(async move {
            let started = pool.start_worker(&shared).await;
            let mut state = pool.lock();
            state.starting -= 1;
            state.background_starting -= 1;
            match started {
                Ok(worker) => pool.add_idle_locked(state, worker),
                // Whoever waited for this start decides again (and may start one of its own).
                Err(_) => {
                    drop(state);
                    pool.worker_available.notify_waiters();
                }
            }
        });
    }

    fn count_kill(&self, reason: KillReason) {
        self.counters.kills[reason as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Kills a worker in the background (its SIGKILL is sent before this returns).
    pub fn dispose(&self, worker: Worker, reason: KillReason) {
        self.count_kill(reason);
        worker.confinement.thaw();
        worker.process.kill_group();
        let pending = worker.cleanups.guard();
        tokio::spawn(async move {
            worker.kill_and_reap().await;
            drop(pending);
        });
    }

    fn dispose_all(&self, workers: Vec<Worker>, reason: KillReason) {
        for worker in workers {
            self.dispose(worker, reason);
        }
    }

    /// Stops idle workers unused for longer than the idle time-to-live (scale to zero), and
    /// freezes those idle for `freeze_after`: what a handler left running (threads, timers) stops
    /// then and costs nothing until a lease thaws the worker. A worker called again sooner is
    /// never frozen, so a busy function's calls pay nothing for it (freezing and thawing at every
    /// call cost 148 µs a call with cgroup v1's freezer here).
    pub fn reap_idle(&self, now: Instant, freeze_after: Duration) {
        let ttl = self.spec.limits.idle_ttl;
        let expired: Vec<Worker> = {
            let mut state = self.lock();
            let (expired, kept): (Vec<Worker>, Vec<Worker>) = std::mem::take(&mut state.idle)
                .into_iter()
                .partition(|worker| now.saturating_duration_since(worker.last_used) >= ttl);
            for worker in kept.iter().filter(|worker| now.saturating_duration_since(worker.last_used) >= freeze_after) {
                worker.confinement.freeze();
            }
            state.idle = kept;
            expired
        };
        self.dispose_all(expired, KillReason::IdleExpired);
    }

    /// Retires the pool and SIGKILLs its idle workers and their cgroups at once, without reaping
    /// (for when the pool itself is being dropped).
    pub fn kill_idle_now(&self) {
        let idle = {
            let mut state = self.lock();
            state.retired = true;
            std::mem::take(&mut state.idle)
        };
        for worker in idle {
            worker.kill_now();
        }
    }

    /// Marks the pool retired and kills its idle workers; busy ones are killed when released.
    pub fn retire(&self) {
        let idle = {
            let mut state = self.lock();
            state.retired = true;
            std::mem::take(&mut state.idle)
        };
        self.dispose_all(idle, KillReason::Retired);
        self.worker_available.notify_waiters();
    }

    /// Runs one invocation on a warm worker. Admission has already been granted.
    pub async fn invoke_warm(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        request: &InvocationRequest,
        queued_at: Instant,
        admitted_at: Instant,
    ) -> Invocation {
        let limits = &self.spec.limits;
        let queue_us = admitted_at.duration_since(queued_at).as_micros() as u64;
        let lease = self.lease(shared, queued_at + limits.max_queue_wait).await;
        let (mut worker, cold) = match lease {
            Ok(leased) => leased,
            Err(error) => {
                let (outcome, error) = match error {
                    LeaseError::Unavailable(message) => {
                        (Outcome::RuntimeUnavailable, InvocationError::new("runtime_unavailable", message))
                    }
                    LeaseError::Retired => (
                        Outcome::RuntimeUnavailable,
                        InvocationError::new(
                            crate::outcome::RETIRED_BEFORE_IT_RAN,
                            "this function version was retired while the invocation waited",
                        ),
                    ),
                    LeaseError::WaitExceeded => (
                        Outcome::WaitExceeded,
                        InvocationError::new(
                            "wait_exceeded",
                            "no worker became available within the maximum queue wait",
                        ),
                    ),
                };
                let queue_us = queued_at.elapsed().as_micros() as u64;
                return Invocation::rejected(request.id.clone(), self.key.to_string(), outcome, error, queue_us);
            }
        };

        // Output the worker printed while idle belongs to no invocation.
        let mut idle_output = LogCollector::new(limits.max_log_bytes, limits.max_log_lines);
        worker.drain_ready_output(&mut idle_output);
        if !idle_output.is_empty() {
            shared.send_stray_output(&self.key, idle_output);
        }
        // After that drain: a new registration knows no readiness until the reactor's next turn,
        // so output waiting in the pipes would not be seen as idle output.
        worker.rebind();

        // A shape still to be detected may need the headers as sent; the body shape never reads them.
        let with_header_list = self.spec.entry.shape.is_none_or(Shape::wants_header_list);
        let frame = encode_request(&request.id, limits.timeout.as_millis() as u64, &request.event, with_header_list);
        let mut logs = LogCollector::new(limits.max_log_bytes, limits.max_log_lines);
        let watchdog = matches!(shared.host.enforcement, Enforcement::Rlimit).then_some((
            shared.host.proc_root.as_path(),
            limits.memory_bytes,
            shared.host.rss_watchdog_interval,
        ));
        let exec_started = Instant::now();
        let raw = worker.invoke(&frame, &request.id, exec_started + limits.timeout, &mut logs, watchdog).await;
        let exec_us = exec_started.elapsed().as_micros() as u64;

        let classified = self.classify(raw, &worker, &logs);
        let peak_memory_bytes = worker.peak_memory_bytes(&shared.host.proc_root);
        let worker_pid = Some(worker.process.pid());
        self.release(shared, worker, classified.kill);
        let output = logs.finish();
        Invocation {
            id: request.id.clone(),
            function_key: self.key.to_string(),
            outcome: classified.outcome,
            result: classified.result,
            error: classified.error,
            cold,
            queue_us,
            exec_us,
            peak_memory_bytes,
            bytes_in: frame.len() as u64,
            bytes_out: classified.bytes_out,
            logs: output.lines,
            log_bytes_dropped: output.dropped_bytes,
            worker_pid,
            retry_after_seconds: None,
        }
    }

    fn classify(&self, raw: RawReply, worker: &Worker, logs: &LogCollector) -> Classified {
        let limits = &self.spec.limits;
        match raw {
            RawReply::Replied { ok: true, result, bytes_out, .. } => {
                Classified { outcome: Outcome::Ok, result: Some(result), error: None, kill: None, bytes_out }
            }
            RawReply::Replied { error, bytes_out, .. } => {
                let error = error.unwrap_or_else(|| crate::protocol::FunctionError {
                    error_type: "Error".into(),
                    message: "the function failed without an error message".into(),
                    stack: None,
                    kind: None,
                });
                if error.kind.as_deref() == Some("out_of_memory") {
                    return Classified::failed(
                        Outcome::MemoryLimit,
                        InvocationError::new(
                            "memory_limit",
                            format!(
                                "the function ran out of memory ({} MB cap): {}",
                                limits.memory_bytes >> 20,
                                error.message
                            ),
                        ),
                        Some(KillReason::MemoryLimit),
                    );
                }
                // The adapters mark a body the handler's signature refuses (Dart) and a result that
                // is not JSON: answered 400 invalid_body and 502 invalid_output.
                let code = error
                    .kind
                    .as_deref()
                    .filter(|kind| matches!(*kind, "invalid_body" | "invalid_output"))
                    .unwrap_or("function_error");
                // A message or stack trace may be megabytes (a million-line message): the caller
                // gets its head, and the logs keep no more than a call's budget anyway.
                let mut invocation_error =
                    InvocationError::new(code, crate::outcome::shortened(error.message, MAX_ERROR_MESSAGE_BYTES));
                invocation_error.error_type =
                    Some(crate::outcome::shortened(error.error_type, MAX_ERROR_MESSAGE_BYTES));
                let builds_dir = self.launch.as_ref().ok().and_then(|launch| launch.dart_builds_dir.as_deref());
                invocation_error.stack = error.stack.map(|stack| {
                    let stack = crate::outcome::shortened(stack, limits.max_log_bytes);
                    relative_stack(&stack, &self.spec.directory, builds_dir)
                });
                Classified { bytes_out, ..Classified::failed(Outcome::FunctionError, invocation_error, None) }
            }
            RawReply::TooLarge { declared_bytes } => Classified::failed(
                Outcome::FunctionError,
                InvocationError::new(
                    "result_too_large",
                    format!("the result is {declared_bytes} bytes; the limit is {} bytes", limits.max_result_bytes),
                ),
                None,
            ),
            RawReply::TimedOut => Classified::failed(
                Outcome::Timeout,
                InvocationError::new(
                    "timeout",
                    format!("the function did not finish within {} ms", limits.timeout.as_millis()),
                ),
                Some(KillReason::Timeout),
            ),
            RawReply::RssExceeded { rss_bytes } => Classified::failed(
                Outcome::MemoryLimit,
                InvocationError::new(
                    "memory_limit",
                    format!("the worker used {} MB, over its {} MB cap", rss_bytes >> 20, limits.memory_bytes >> 20),
                ),
                Some(KillReason::MemoryLimit),
            ),
            RawReply::Exited(status) => {
                let stderr = logs.recent_lines(LogStream::Stderr, 20);
                let memory = worker.confinement.memory_limit_hit()
                    || stderr.iter().any(|line| OUT_OF_MEMORY_MARKERS.iter().any(|marker| line.contains(marker)));
                let how = status.map_or_else(|| "exited".to_string(), |status| status.to_string());
                if memory {
                    Classified::failed(
                        Outcome::MemoryLimit,
                        InvocationError::new(
                            "memory_limit",
                            format!(
                                "the worker exceeded its {} MB memory cap and was killed ({how})",
                                limits.memory_bytes >> 20
                            ),
                        ),
                        Some(KillReason::MemoryLimit),
                    )
                } else {
                    Classified::failed(
                        Outcome::Crashed,
                        InvocationError::new("crashed", format!("the worker {how} before replying")),
                        Some(KillReason::Crashed),
                    )
                }
            }
            RawReply::Broken(message) => Classified::failed(
                Outcome::Crashed,
                InvocationError::new("invalid_output", format!("the worker broke the protocol: {message}")),
                Some(KillReason::ProtocolError),
            ),
        }
    }

    /// When `queued` waiting calls should be through, at the rate calls of this version have been
    /// completing: what a rejection's `Retry-After` says. At least 1 s and at most 60 s; with no
    /// recent completion (every slot stuck in a slow call), the function's timeout.
    pub fn retry_after_seconds(&self, queued: usize) -> u64 {
        let completed: u64 = Outcome::ALL
            .iter()
            .filter(|outcome| !outcome.is_rejection())
            .map(|outcome| self.counters.outcomes[*outcome as usize].load(Ordering::Relaxed))
            .sum();
        let per_second = {
            let mut sample = self.drain.lock().expect("drain lock poisoned");
            let elapsed = sample.at.elapsed();
            if elapsed >= DRAIN_SAMPLE_PERIOD {
                let rate = completed.saturating_sub(sample.completed) as f64 / elapsed.as_secs_f64();
                *sample = DrainSample { at: Instant::now(), completed, per_second: rate };
            }
            sample.per_second
        };
        let seconds = if per_second > 0.0 {
            (queued.max(1) as f64 / per_second).ceil() as u64
        } else {
            self.spec.limits.timeout.as_secs_f64().ceil() as u64
        };
        seconds.clamp(1, 60)
    }

    pub fn count_outcome(&self, outcome: Outcome) {
        self.counters.outcomes[outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn kill_counts(&self) -> HashMap<&'static str, u64> {
        KillReason::ALL
            .iter()
            .map(|reason| (reason.as_str(), self.counters.kills[*reason as usize].load(Ordering::Relaxed)))
            .collect()
    }
}

struct Classified {
    outcome: Outcome,
    result: Option<serde_json::Value>,
    error: Option<InvocationError>,
    kill: Option<KillReason>,
    bytes_out: u64,
}

impl Classified {
    fn failed(outcome: Outcome, error: InvocationError, kill: Option<KillReason>) -> Self {
        Self { outcome, result: None, error: Some(error), kill, bytes_out: 0 }
    }
}

/// Forwards output that belongs to no invocation to the stray-log channel.
pub(crate) fn stray_lines(function_key: &Arc<str>, logs: LogCollector) -> impl Iterator<Item = StrayLogLine> + '_ {
    logs.finish().lines.into_iter().map(move |line| StrayLogLine { function_key: function_key.to_string(), line })
}
