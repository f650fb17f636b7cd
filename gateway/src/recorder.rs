//! Invocation records and log lines go to the database in batches, off the hot path: the
//! request hands them to a bounded buffer and moves on. Nothing waits for the database: when it
//! refuses a batch, is down, or is so slow that the buffer fills, the records go to the on-disk
//! journal (`crate::journal`) and are written from there once the database takes writes again.
//! Only what a full journal cannot take is dropped, and counted. Log lines may take only three
//! quarters of the buffer and of the journal ([`LOG_BUFFER_SHARE`]): a log flood never costs an
//! invocation record its place.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::journal::{Entry, Journal};
use crate::store::{InvocationRecord, LogRecord, RejectionRecord, Store, StoreResult};

/// Items the buffer holds before it starts dropping.
pub const BUFFER_ITEMS: usize = 20_000;
/// The most of the buffer log lines may hold; the rest is kept for invocation records.
pub const LOG_BUFFER_SHARE: usize = BUFFER_ITEMS * 3 / 4;
/// Rows written per batch at most; a batch also goes out after this long.
const BATCH_ROWS: usize = 1_000;
const BATCH_WAIT: Duration = Duration::from_millis(50);
/// After a refused write, batches go straight to the journal for this long (doubling, up to
/// `LONGEST_OUTAGE_WAIT`) before the database is tried again.
const FIRST_OUTAGE_WAIT: Duration = Duration::from_secs(1);
const LONGEST_OUTAGE_WAIT: Duration = Duration::from_secs(10);
/// A journal segment refused this many times in a row, while live batches go in, is set aside.
const POISONED_AFTER: u32 = 5;

#[derive(Debug)]
pub enum Record {
    Invocation(InvocationRecord),
    Log(LogRecord),
}

impl From<Record> for Entry {
    fn from(record: Record) -> Entry {
        match record {
            Record::Invocation(row) => Entry::Invocation(row),
            Record::Log(row) => Entry::Log(row),
        }
    }
}

#[derive(Debug, Default)]
pub struct RecorderCounters {
    pub dropped_invocations: AtomicU64,
    pub dropped_logs: AtomicU64,
    pub failed_writes: AtomicU64,
}

impl RecorderCounters {
    /// Counts `entry` as lost (neither the database nor the journal took it).
    fn lost(&self, entry: &Entry) {
        let counter = match entry {
            Entry::Log(_) => &self.dropped_logs,
            Entry::Invocation(_) | Entry::Rejection(_) => &self.dropped_invocations,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone)]
pub struct Recorder {
    sender: mpsc::Sender<Record>,
    /// Every log line passes here: a function's secret values are masked before it is kept.
    secrets: Arc<crate::secrets::Secrets>,
    pub counters: Arc<RecorderCounters>,
    progress: Arc<Progress>,
    pub journal: Arc<Journal>,
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
        journal: Arc<Journal>,
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
        let writer = tokio::spawn(write_batches(store, receiver, counters.clone(), progress.clone(), journal.clone()));
        (Recorder { sender, secrets, counters, progress, journal }, writer)
    }

    pub fn record(&self, mut record: Record) {
        if let Record::Log(line) = &mut record {
            if let std::borrow::Cow::Owned(masked) = self.secrets.mask(&line.function_id, &line.message) {
                line.message = masked;
            }
        }
        // Log lines may fill only part of the buffer: a flood of them never pushes out the
        // invocation records of other calls (theirs or another tenant's).
        if matches!(record, Record::Log(_)) && self.sender.capacity() <= BUFFER_ITEMS - LOG_BUFFER_SHARE {
            let entry = Entry::from(record);
            if self.journal.append([&entry]) == 0 {
                self.counters.lost(&entry);
            }
            return;
        }
        match self.sender.try_send(record) {
            Ok(()) => {
                self.progress.accepted.fetch_add(1, Ordering::SeqCst);
            }
            // The database is behind (or the writer is gone): to disk rather than lost.
            Err(mpsc::error::TrySendError::Full(record) | mpsc::error::TrySendError::Closed(record)) => {
                let entry = Entry::from(record);
                if self.journal.append([&entry]) == 0 {
                    self.counters.lost(&entry);
                }
            }
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
    journal: Arc<Journal>,
) {
    let mut writer = Writer { store, counters, journal, outage: None, replay_failures: 0 };
    let mut closing = progress.closing.subscribe();
    loop {
        let mut pending = Vec::new();
        // With a journal to write back, the writer also wakes on its own (and has no batch to
        // wait for then).
        let replay_tick = tokio::time::sleep(writer.next_replay_in());
        let mut batch = true;
        tokio::select! {
            first = receiver.recv() => match first {
                Some(first) => pending.push(first),
                None => break,
            },
            // Only refusals to write: still a batch, after the same window.
            _ = progress.rejected.notified() => {}
            _ = replay_tick => batch = false,
            _ = closing.wait_for(|closing| *closing) => match receiver.try_recv() {
                Ok(first) => pending.push(first),
                Err(_) => break,
            },
        }
        take_ready(&mut receiver, &mut pending);
        // Then wait out the batch window *without* listening to the channel: a receiver waiting in
        // `recv` is woken by every send, one thread wake-up per call on the hot path; a sleeping
        // one is woken once per batch. A full batch, a waiting reader or shutdown cut it short.
        if batch && pending.len() < BATCH_ROWS && !*closing.borrow() {
            tokio::select! {
                _ = tokio::time::sleep_until(tokio::time::Instant::now() + BATCH_WAIT) => {}
                _ = progress.hurry.notified() => {}
                _ = closing.wait_for(|closing| *closing) => {}
            }
            take_ready(&mut receiver, &mut pending);
        }
        let count = pending.len() as u64;
        writer.write(pending).await;
        let refusals = writer.write_rejections(&progress).await;
        progress.handled.send_modify(|handled| *handled += count + refusals);
        if !writer.journal.is_empty() {
            // Records that overflowed the buffer were appended by the request path, unsynced.
            writer.journal.sync();
        }
        writer.replay_one_segment().await;
    }
    let mut rest = Vec::new();
    take_ready(&mut receiver, &mut rest);
    writer.write(rest).await;
    writer.write_rejections(&progress).await;
    writer.journal.sync();
}

/// The writer's side: the database, and the journal for what it does not take.
struct Writer {
    store: Arc<dyn Store>,
    counters: Arc<RecorderCounters>,
    journal: Arc<Journal>,
    /// Set by a refused write: until `retry_at`, batches go straight to the journal.
    outage: Option<Outage>,
    /// Refusals in a row of the oldest journal segment.
    replay_failures: u32,
}

struct Outage {
    retry_at: tokio::time::Instant,
    wait: Duration,
}

impl Writer {
    /// Whether the database may be tried now.
    fn database_up(&self) -> bool {
        self.outage.as_ref().is_none_or(|outage| tokio::time::Instant::now() >= outage.retry_at)
    }

    fn refused(&mut self, error: &crate::store::StoreError, rows: usize, what: &str) {
        let wait = self.outage.as_ref().map_or(FIRST_OUTAGE_WAIT, |outage| (outage.wait * 2).min(LONGEST_OUTAGE_WAIT));
        tracing::warn!(%error, rows, retry_in = ?wait, "the database refused {what}: journaled");
        self.counters.failed_writes.fetch_add(1, Ordering::Relaxed);
        self.outage = Some(Outage { retry_at: tokio::time::Instant::now() + wait, wait });
    }

    /// How long until the journal should be written back (a long time when it is empty).
    fn next_replay_in(&self) -> Duration {
        if self.journal.is_empty() {
            return Duration::from_secs(3600);
        }
        match &self.outage {
            Some(outage) => outage.retry_at.saturating_duration_since(tokio::time::Instant::now()),
            None => BATCH_WAIT,
        }
    }

    /// Each table in one multi-row INSERT per batch; what the database does not take is journaled.
    async fn write(&mut self, records: Vec<Record>) {
        let (mut invocations, mut logs) = (Vec::new(), Vec::new());
        for record in records {
            match record {
                Record::Invocation(row) => invocations.push(row),
                Record::Log(row) => logs.push(row),
            }
        }
        if !invocations.is_empty() {
            self.write_or_journal(invocations, "invocation records", Entry::Invocation).await;
        }
        if !logs.is_empty() {
            self.write_or_journal(logs, "log lines", Entry::Log).await;
        }
    }

    async fn write_or_journal<T>(&mut self, rows: Vec<T>, what: &str, entry: fn(T) -> Entry)
    where
        Vec<T>: Rows,
    {
        if self.database_up() {
            match rows.insert_into(&*self.store).await {
                Ok(()) => {
                    self.outage = None;
                    return;
                }
                Err(error) => self.refused(&error, rows.len(), what),
            }
        }
        let entries: Vec<Entry> = rows.into_iter().map(entry).collect();
        self.journal_or_drop(&entries);
    }

    fn journal_or_drop(&self, entries: &[Entry]) {
        let taken = self.journal.append(entries);
        self.journal.sync();
        for entry in &entries[taken..] {
            self.counters.lost(entry);
        }
    }

    /// Writes the refusals counted since the last write; returns how many there were.
    async fn write_rejections(&mut self, progress: &Progress) -> u64 {
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
        self.write_or_journal(rows, "refusal counts", Entry::Rejection).await;
        taken.events
    }

    /// Writes the oldest journal segment back to the database, and removes it once all of it is
    /// in. One segment a turn, so live batches keep going out between segments.
    async fn replay_one_segment(&mut self) {
        if self.journal.is_empty() || !self.database_up() {
            return;
        }
        let Some(segment) = self.journal.sealed_segments().into_iter().next() else { return };
        let (entries, unreadable) = match crate::journal::read_segment(&segment) {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(%error, path = %segment.display(), "cannot read a journal segment: it is dropped");
                self.journal.remove(&segment);
                return;
            }
        };
        if unreadable > 0 {
            tracing::warn!(unreadable, path = %segment.display(), "journal lines cut short (a crash while writing): lost");
            self.journal.unreadable.fetch_add(unreadable as u64, Ordering::Relaxed);
        }
        let (mut invocations, mut logs, mut rejections) = (Vec::new(), Vec::new(), Vec::new());
        for entry in entries {
            match entry {
                Entry::Invocation(row) => invocations.push(row),
                Entry::Log(row) => logs.push(row),
                Entry::Rejection(row) => rejections.push(row),
            }
        }
        let rows = invocations.len() + logs.len() + rejections.len();
        // One transaction: a segment retried after a failure must not write its log lines (or
        // add its refusal counts) twice; invocation records are idempotent anyway.
        match self.store.insert_records(&invocations, &logs, &rejections).await {
            Ok(()) => {
                self.journal.remove(&segment);
                self.replay_failures = 0;
                tracing::info!(rows, path = %segment.display(), "journaled records written to the database");
            }
            Err(error) => {
                self.replay_failures += 1;
                // Refused again and again while the database takes the live batches: something
                // in this segment, not the database. Set it aside so the ones after it go in.
                if self.replay_failures >= POISONED_AFTER && self.outage.is_none() {
                    tracing::error!(%error, rows, path = %segment.display(), "a journal segment the database keeps refusing: moved to the journal's quarantine/ for an operator; the segments after it go on");
                    self.journal.quarantine(&segment);
                    self.counters.dropped_invocations.fetch_add(invocations.len() as u64, Ordering::Relaxed);
                    self.counters.dropped_logs.fetch_add(logs.len() as u64, Ordering::Relaxed);
                    self.replay_failures = 0;
                } else {
                    self.refused(&error, rows, "the journal's records");
                }
            }
        }
    }
}

/// A batch of one kind of row (never empty: the writer skips empty batches), and how it is written.
trait Rows {
    async fn insert_into(&self, store: &dyn Store) -> StoreResult<()>;
}

impl Rows for Vec<InvocationRecord> {
    async fn insert_into(&self, store: &dyn Store) -> StoreResult<()> {
        store.insert_invocations(self).await
    }
}

impl Rows for Vec<LogRecord> {
    async fn insert_into(&self, store: &dyn Store) -> StoreResult<()> {
        store.insert_logs(self).await
    }
}

impl Rows for Vec<RejectionRecord> {
    async fn insert_into(&self, store: &dyn Store) -> StoreResult<()> {
        store.add_rejections(self).await
    }
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

/// Lines workers print outside any invocation (while loading, or idle) are the function's logs
/// too. Holds the app weakly: the task ends with the server.
pub async fn forward_stray_logs(app: Arc<crate::app::App>, mut lines: mpsc::Receiver<prewarm::StrayLogLine>) {
    let app = Arc::downgrade(&app);
    while let Some(stray) = lines.recv().await {
        let Some(app) = app.upgrade() else { break };
        let Some((function_id, version)) = stray.function_key.rsplit_once('@') else { continue };
        if !app.log_budget.admit_stray(function_id, &stray.line.text) {
            continue;
        }
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
