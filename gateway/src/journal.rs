//! The records journal. Invocation records, log lines and refusal counts that the database did
//! not take (it is down, it refused the write, or it is so slow that the recorder's buffer is
//! full) are appended to files in `DATA_DIR/journal/`, and the recorder writes them to the
//! database once it takes writes again. Bounded in bytes: what does not fit is dropped and
//! counted. The files outlive the server, so the next start writes what a stop left.
//!
//! Each file is a segment of JSON lines, named by a sequence number; appends go to the newest
//! one, which is sealed (and a new one begun) at [`SEGMENT_BYTES`] or when it is replayed. A
//! line cut short by a crash does not parse and is counted as lost.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::store::{InvocationRecord, LogRecord, RejectionRecord};

/// A segment is sealed once it holds this much, so a replay reads at most this much at once.
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// One journaled row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    #[serde(rename = "invocation")]
    Invocation(InvocationRecord),
    #[serde(rename = "log")]
    Log(LogRecord),
    #[serde(rename = "rejection")]
    Rejection(RejectionRecord),
}

#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    open: Mutex<OpenSegment>,
    /// Bytes in every segment, the open one included (what is buffered counts already).
    bytes: AtomicU64,
    /// The most `bytes` has been since start.
    high_water: AtomicU64,
    /// Lines that could not be read back (cut short by a crash while they were written).
    pub unreadable: AtomicU64,
}

#[derive(Debug, Default)]
struct OpenSegment {
    writer: Option<(PathBuf, BufWriter<File>)>,
    written: u64,
    next_sequence: u64,
}

impl Journal {
    /// Opens (creating) the journal in `dir`; what earlier runs left there is kept for replay.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Journal> {
        std::fs::create_dir_all(dir)?;
        let segments = segments_in(dir)?;
        let bytes: u64 = segments.iter().filter_map(|path| std::fs::metadata(path).ok()).map(|meta| meta.len()).sum();
        let next_sequence = segments.iter().filter_map(|path| sequence_of(path)).max().map_or(1, |last| last + 1);
        Ok(Journal {
            dir: dir.to_path_buf(),
            max_bytes,
            open: Mutex::new(OpenSegment { writer: None, written: 0, next_sequence }),
            bytes: AtomicU64::new(bytes),
            high_water: AtomicU64::new(bytes),
            unreadable: AtomicU64::new(0),
        })
    }

    /// Appends `entries` (buffered: [`Journal::sync`] makes them durable). Returns how many were
    /// taken, in order: the rest did not fit (or could not be written), and are the caller's
    /// to count as lost.
    pub fn append<'a>(&self, entries: impl IntoIterator<Item = &'a Entry>) -> usize {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut taken = 0;
        for entry in entries {
            let mut line = serde_json::to_vec(entry).expect("records serialize");
            line.push(b'\n');
            let size = line.len() as u64;
            // Log lines may fill only part of the journal: invocation records always find room.
            let room = match entry {
                Entry::Log(_) => self.max_bytes / 4 * 3,
                Entry::Invocation(_) | Entry::Rejection(_) => self.max_bytes,
            };
            if self.bytes.load(Ordering::Relaxed) + size > room || self.write_line(&mut open, &line).is_err() {
                break;
            }
            let now = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
            self.high_water.fetch_max(now, Ordering::Relaxed);
            taken += 1;
        }
        taken
    }

    fn write_line(&self, open: &mut OpenSegment, line: &[u8]) -> std::io::Result<()> {
        if open.written >= SEGMENT_BYTES {
            seal(open)?;
        }
        if open.writer.is_none() {
            let path = self.dir.join(format!("{:020}.jsonl", open.next_sequence));
            open.next_sequence += 1;
            let file = std::fs::OpenOptions::new().create_new(true).append(true).open(&path)?;
            open.writer = Some((path, BufWriter::with_capacity(64 << 10, file)));
            open.written = 0;
        }
        let (_, writer) = open.writer.as_mut().expect("opened above");
        writer.write_all(line)?;
        open.written += line.len() as u64;
        Ok(())
    }

    /// Writes what is buffered to the open segment and waits until it is on disk.
    pub fn sync(&self) {
        let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((path, writer)) = open.writer.as_mut() {
            if let Err(error) = writer.flush().and_then(|()| writer.get_ref().sync_data()) {
                tracing::error!(%error, path = %path.display(), "cannot write the records journal");
            }
        }
    }

    /// Seals the open segment and lists every segment, oldest first: what a replay writes.
    pub fn sealed_segments(&self) -> Vec<PathBuf> {
        {
            let mut open = self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Err(error) = seal(&mut open) {
                tracing::error!(%error, "cannot seal the records journal's open segment");
            }
        }
        segments_in(&self.dir).unwrap_or_default()
    }

    /// Removes a replayed segment.
    pub fn remove(&self, segment: &Path) {
        let size = std::fs::metadata(segment).map(|meta| meta.len()).unwrap_or(0);
        match std::fs::remove_file(segment) {
            Ok(()) => {
                self.bytes.fetch_sub(size.min(self.bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
            Err(error) => {
                tracing::error!(%error, path = %segment.display(), "cannot remove a replayed journal segment")
            }
        }
    }

    /// Moves a segment the database keeps refusing to `quarantine/`, out of the replay's way
    /// but on disk for an operator.
    pub fn quarantine(&self, segment: &Path) {
        let size = std::fs::metadata(segment).map(|meta| meta.len()).unwrap_or(0);
        let aside = self.dir.join("quarantine");
        let moved = std::fs::create_dir_all(&aside)
            .and_then(|()| std::fs::rename(segment, aside.join(segment.file_name().unwrap_or_default())));
        match moved {
            Ok(()) => {
                self.bytes.fetch_sub(size.min(self.bytes.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
            Err(error) => tracing::error!(%error, path = %segment.display(), "cannot move a journal segment aside"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) == 0
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn high_water(&self) -> u64 {
        self.high_water.load(Ordering::Relaxed)
    }
}

/// The entries of a segment, and how many of its lines did not parse (cut short by a crash).
pub fn read_segment(path: &Path) -> std::io::Result<(Vec<Entry>, usize)> {
    let text = std::fs::read(path)?;
    let mut entries = Vec::new();
    let mut unreadable = 0;
    for line in text.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()) {
        match serde_json::from_slice(line) {
            Ok(entry) => entries.push(entry),
            Err(_) => unreadable += 1,
        }
    }
    Ok((entries, unreadable))
}

/// Flushes, syncs and closes the open segment; the next append begins a new one.
fn seal(open: &mut OpenSegment) -> std::io::Result<()> {
    if let Some((_, mut writer)) = open.writer.take() {
        writer.flush()?;
        writer.get_ref().sync_data()?;
    }
    open.written = 0;
    Ok(())
}

fn segments_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| sequence_of(path).is_some())
        .collect();
    segments.sort_by_key(|path| sequence_of(path));
    Ok(segments)
}

fn sequence_of(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_suffix(".jsonl")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(message: &str) -> Entry {
        Entry::Log(LogRecord {
            id: 0,
            function_id: "fn_1".into(),
            version: 1,
            invocation_id: None,
            timestamp_us: 7,
            stream: "stdout".into(),
            message: message.into(),
        })
    }

    #[test]
    fn entries_survive_a_reopen_and_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(journal.is_empty());
        assert_eq!(journal.append(&[log("one"), log("two")]), 2);
        journal.sync();
        drop(journal);

        let reopened = Journal::open(dir.path(), 1 << 20).unwrap();
        assert!(!reopened.is_empty());
        assert_eq!(reopened.append(&[log("three")]), 1);
        let segments = reopened.sealed_segments();
        assert_eq!(segments.len(), 2, "a reopened journal appends to a new segment");
        let mut read = Vec::new();
        for segment in &segments {
            read.extend(read_segment(segment).unwrap().0);
            reopened.remove(segment);
        }
        assert_eq!(read, vec![log("one"), log("two"), log("three")]);
        assert!(reopened.is_empty());
        assert!(reopened.high_water() > 0);
    }

    #[test]
    fn a_full_journal_takes_what_fits() {
        let dir = tempfile::tempdir().unwrap();
        let one_line = serde_json::to_vec(&log("x")).unwrap().len() as u64 + 1;
        let journal = Journal::open(dir.path(), one_line * 2).unwrap();
        assert_eq!(journal.append(&[log("x"), log("x"), log("x")]), 1, "log lines get three quarters");
        assert_eq!(journal.bytes(), one_line);
        assert_eq!(journal.append(&[log("x")]), 0);
        let record = Entry::Invocation(crate::store::tests::invocation("inv_1"));
        // Room for one invocation record after a flood of log lines filled their share.
        let record_line = serde_json::to_vec(&record).unwrap().len() as u64 + 1;
        let other_dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(other_dir.path(), record_line * 4).unwrap();
        while journal.append(&[log("x")]) == 1 {}
        assert!(journal.bytes() <= record_line * 3);
        assert_eq!(journal.append(&[record]), 1, "a flood of log lines leaves room for records");
    }

    #[test]
    fn a_line_cut_short_is_counted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(dir.path(), 1 << 20).unwrap();
        journal.append(&[log("whole")]);
        let segment = journal.sealed_segments().pop().unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(br#"{"log":{"id":0,"function_id":"fn_"#).unwrap();
        let (entries, unreadable) = read_segment(&segment).unwrap();
        assert_eq!((entries, unreadable), (vec![log("whole")], 1));
    }
}
