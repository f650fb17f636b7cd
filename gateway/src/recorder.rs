//! Invocation records and log lines go to the database in batches, off the hot path: the
//! request hands them to a bounded buffer and moves on. When the buffer is full (a slow or
//! unreachable database) they are dropped and counted, never waited for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::store::{InvocationRecord, LogRecord, RejectionRecord, Store, StoreResult};

/// Items the buffer holds before it starts dropping.
pub const BUFFER_ITEMS: usize = 20_000;
/// Rows written per batch at most; a batch also goes out after this long.
const BATCH_ROWS: usize = 1_000;
const BATCH_WAIT: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub enum Record {
    Invocation(InvocationRecord),
    Log(LogRecord),
}

#[derive(Debug, Default)]
pub struct RecorderCounters {
    pub dropped_invocations: AtomicU64,
    pub dropped_logs: AtomicU64,
    pub failed_writes: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Record>,
    /// Every log line passes here: a function's secret values are masked before it is kept.
    secrets: Arc<crate::secrets::Secrets>,
    pub counters: Arc<RecorderCounters>,
    progress: Arc<Progress>,
}

/// How far the writer is: records accepted, records handled (written or dropped by a refusing
/// database), and the signals between readers, the writer and shutdown.
#[derive(Debug)]
struct Progress {
    accepted: AtomicU64,
    handled: tokio::sync::watch::Sender<u64>,
    /// A reader waits: write the current batch now instead of after `BATCH_WAIT`.
    hurry: tokio::sync::Notify,
    /// Shutdown: write what is buffered, then end.
    closing: tokio::sync::watch::Sender<bool>,
    /// Refused calls, counted here instead of going through the channel: a flood of refusals
    /// can neither fill the buffer nor push out the records of served calls.
    rejections: std::sync::Mutex<Rejections>,
    /// The first refusal after a write: the writer has something to write even if no call is served.
    rejected: tokio::sync::Notify,
}

/// Refusals by (function id, version, outcome, Unix second), and how many were counted.
#[derive(Debug, Default)]
struct Rejections {
    counts: std::collections::HashMap<(String, i64, &'static str, i64), i64>,
    events: u64,
}

impl Recorder {
    /// Starts the writer task on the current runtime. The task ends, after a last flush, on
    /// [`Recorder::close`] or when every `Recorder` clone is dropped; await the returned handle
    /// to know it has.
    pub fn start(
        store: Arc<dyn Store>,
        secrets: Arc<crate::secrets::Secrets>,
    ) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(BUFFER_ITEMS);
        let counters = Arc::new(RecorderCounters::default());
        let progress = Arc::new(Progress {
            accepted: AtomicU64::new(0),
            handled: tokio::sync::watch::Sender::new(0),
            hurry: tokio::sync::Notify::new(),
            closing: tokio::sync::watch::Sender::new(false),
            rejections: Default::default(),
            rejected: tokio::sync::Notify::new(),
        });
        let writer = tokio::spawn(write_batches(store, receiver, counters.clone(), progress.clone()));
        (Recorder { sender, secrets, counters, progress }, writer)
    }

    pub fn record(&self, mut record: Record) {
        if let Record::Log(line) = &mut record {
            if let std::borrow::Cow::Owned(masked) = self.secrets.mask(&line.function_id, &line.message) {
                line.message = masked;
            }
        }
        let is_log = matches!(record, Record::Log(_));
        if self.sender.try_send(record).is_err() {
            let counter = if is_log { &self.counters.dropped_logs } else { &self.counters.dropped_invocations };
            counter.fetch_add(1, Ordering::Relaxed);
        } else {
            self.progress.accepted.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Counts a refused call (no row of its own: refusals are stored per function, version,
    /// outcome and second).
    pub fn record_rejection(&self, function_id: &str, version: i64, outcome: &'static str, at_ms: i64) {
        let first = {
            let mut rejections = self.progress.rejections.lock().expect("rejections lock poisoned");
            *rejections.counts.entry((function_id.to_string(), version, outcome, at_ms / 1000)).or_default() += 1;
            rejections.events += 1;
            rejections.events == 1
        };
        self.progress.accepted.fetch_add(1, Ordering::SeqCst);
        if first {
            self.progress.rejected.notify_one();
        }
    }

    /// Read your own writes: waits (at most `bound`) until every record accepted before this
    /// call has been handed to the database, hurrying the writer's current batch.
    pub async fn caught_up(&self, bound: Duration) {
        let target = self.progress.accepted.load(Ordering::SeqCst);
        let mut handled = self.progress.handled.subscribe();
        if *handled.borrow() >= target {
            return;
        }
        self.progress.hurry.notify_one();
        let _ = tokio::time::timeout(bound, handled.wait_for(|handled| *handled >= target)).await;
    }

    /// Shutdown: the writer writes what is buffered and ends (await its handle).
    pub fn close(&self) {
        self.progress.closing.send_replace(true);
        self.progress.hurry.notify_one();
    }
}

async fn write_batches(
    store: Arc<dyn Store>,
    mut receiver: mpsc::Receiver<Record>,
    counters: Arc<RecorderCounters>,
    progress: Arc<Progress>,
) {
    let mut invocations = Vec::new();
    let mut logs = Vec::new();
    let mut closing = progress.closing.subscribe();
    loop {
        let mut pending = Vec::new();
        tokio::select! {
            first = receiver.recv() => match first {
                Some(first) => pending.push(first),
                None => break,
            },
            // Only refusals to write: still a batch, after the same window.
            _ = progress.rejected.notified() => {}
            _ = closing.wait_for(|closing| *closing) => match receiver.try_recv() {
                Ok(first) => pending.push(first),
                Err(_) => break,
            },
        }
        take_ready(&mut receiver, &mut pending);
        // Then wait out the batch window *without* listening to the channel: a receiver waiting in
        // `recv` is woken by every send, one thread wake-up per call on the hot path; a sleeping
        // one is woken once per batch. A full batch, a waiting reader or shutdown cut it short.
        if pending.len() < BATCH_ROWS && !*closing.borrow() {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::now() + BATCH_WAIT) => {}
                _ = progress.hurry.notified() => {}
                _ = closing.wait_for(|closing| *closing) => {}
            }
            take_ready(&mut receiver, &mut pending);
        }
        let count = pending.len() as u64;
        for record in pending {
            match record {
                Record::Invocation(row) => invocations.push(row),
                Record::Log(row) => logs.push(row),
            }
        }
        flush(&*store, &mut invocations, &mut logs, &counters).await;
        let refusals = flush_rejections(&*store, &progress, &counters).await;
        progress.handled.send_modify(|handled| *handled += count + refusals);
    }
    flush(&*store, &mut invocations, &mut logs, &counters).await;
    flush_rejections(&*store, &progress, &counters).await;
}

/// Writes the refusals counted since the last write; returns how many there were.
async fn flush_rejections(store: &dyn Store, progress: &Progress, counters: &RecorderCounters) -> u64 {
    let taken = std::mem::take(&mut *progress.rejections.lock().expect("rejections lock poisoned"));
    if taken.events == 0 {
        return 0;
    }
    let rows: Vec<RejectionRecord> = taken
        .counts
        .into_iter()
        .map(|((function_id, version, outcome, second), count)| RejectionRecord {
            function_id,
            version,
            outcome: outcome.to_string(),
            second,
            count,
        })
        .collect();
    let written = store.add_rejections(&rows).await;
    // What is lost when the database refuses the write is the refusals themselves, not the rows.
    account(written, taken.events as usize, "refusals", &counters.dropped_invocations, counters);
    taken.events
}

/// Moves what the channel already holds into `pending`, up to a batch.
fn take_ready(receiver: &mut mpsc::Receiver<Record>, pending: &mut Vec<Record>) {
    while pending.len() < BATCH_ROWS {
        match receiver.try_recv() {
            Ok(record) => pending.push(record),
            Err(_) => break,
        }
    }
}

async fn flush(
    store: &dyn Store,
    invocations: &mut Vec<InvocationRecord>,
    logs: &mut Vec<LogRecord>,
    counters: &RecorderCounters,
) {
    // Each table in one multi-row INSERT per batch; a refused batch is counted, not retried
    // (retrying would let a broken database grow the buffer without bound).
    if !invocations.is_empty() {
        let written = store.insert_invocations(invocations).await;
        account(written, invocations.len(), "invocation records", &counters.dropped_invocations, counters);
        invocations.clear();
    }
    if !logs.is_empty() {
        let written = store.insert_logs(logs).await;
        account(written, logs.len(), "log lines", &counters.dropped_logs, counters);
        logs.clear();
    }
}

fn account(written: StoreResult<()>, rows: usize, what: &str, dropped: &AtomicU64, counters: &RecorderCounters) {
    if let Err(error) = written {
        tracing::warn!(%error, rows, "dropping {what} the database refused");
        counters.failed_writes.fetch_add(1, Ordering::Relaxed);
        dropped.fetch_add(rows as u64, Ordering::Relaxed);
    }
}

/// Lines workers print outside any invocation (while loading, or idle) are the function's logs
/// too. Holds the app weakly: the task ends with the server.
pub async fn forward_stray_logs(app: Arc<crate::app::App>, mut lines: mpsc::Receiver<prewarm::StrayLogLine>) {
    let app = Arc::downgrade(&app);
    while let Some(stray) = lines.recv().await {
        let Some(app) = app.upgrade() else { break };
        let Some((function_id, version)) = stray.function_key.rsplit_once('@') else { continue };
        app.recorder.record(Record::Log(LogRecord {
            id: 0,
            function_id: function_id.to_string(),
            version: version.parse().unwrap_or(0),
            invocation_id: None,
            timestamp_us: stray.line.timestamp_us,
            stream: stray.line.stream.as_str().to_string(),
            message: stray.line.text.clone(),
        }));
    }
}
