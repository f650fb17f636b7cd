//! Where a `logs?follow=true` stream is. Lines reach the store from every node's recorder, and
//! an id is handed out when a line is inserted but seen only when its batch commits: a batch of
//! one node can become visible after a later-numbered batch of another. Reading "ids above the
//! last one sent" would skip it for good. So the stream reads from a *settled* id: every line
//! above it is read again on each poll, and the ones already sent are skipped; an id is settled
//! once it was sent [`SETTLE`] ago. A batch that commits more than [`SETTLE`] after a later one
//! was read is the only way a line can be missed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::store::LogRecord;

/// How long a sent line stays open to late arrivals below it.
pub const SETTLE: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct FollowCursor {
    /// Every line with an id up to this one was sent or will never be.
    settled: i64,
    /// The lines sent above `settled`: id → when.
    sent: BTreeMap<i64, Instant>,
}

impl FollowCursor {
    /// A stream that starts after `last_id` (what it already sent or chose to skip).
    pub fn after(last_id: i64) -> Self {
        Self { settled: last_id, sent: BTreeMap::new() }
    }

    /// Read the lines with ids above this.
    pub fn read_above(&self) -> i64 {
        self.settled
    }

    /// Of what a poll read (ordered by id), the lines not sent yet; settles what is old enough.
    pub fn take(&mut self, lines: Vec<LogRecord>, now: Instant) -> Vec<LogRecord> {
        let fresh: Vec<LogRecord> =
            lines.into_iter().filter(|line| line.id > self.settled && !self.sent.contains_key(&line.id)).collect();
        for line in &fresh {
            self.sent.insert(line.id, now);
        }
        while let Some((&id, &at)) = self.sent.first_key_value() {
            if now.duration_since(at) < SETTLE {
                break;
            }
            self.settled = id;
            self.sent.pop_first();
        }
        fresh
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: i64) -> LogRecord {
        LogRecord {
            id,
            function_id: "fn_1".into(),
            version: 1,
            invocation_id: None,
            timestamp_us: 0,
            stream: "stdout".into(),
            message: format!("line {id}"),
        }
    }

    fn ids(lines: &[LogRecord]) -> Vec<i64> {
        lines.iter().map(|line| line.id).collect()
    }

    #[test]
    fn a_line_committed_after_a_later_numbered_one_is_still_sent_once() {
        let start = Instant::now();
        let mut cursor = FollowCursor::after(10);
        // Node B's batch (14, 15) is visible first; node A's (11..13) commits a moment later.
        assert_eq!(ids(&cursor.take(vec![line(14), line(15)], start)), [14, 15]);
        assert_eq!(cursor.read_above(), 10, "nothing settles before SETTLE");
        let later = start + Duration::from_millis(200);
        assert_eq!(ids(&cursor.take(vec![line(11), line(12), line(13), line(14), line(15)], later)), [11, 12, 13]);
        // Once settled, the window moves up and nothing is sent twice.
        let settled = start + SETTLE + Duration::from_millis(300);
        assert_eq!(ids(&cursor.take(vec![line(11), line(12), line(13), line(14), line(15), line(16)], settled)), [16]);
        assert_eq!(cursor.read_above(), 15);
        assert!(cursor.take(vec![line(16)], settled).is_empty());
    }

    #[test]
    fn lines_at_or_below_the_start_are_never_sent() {
        let mut cursor = FollowCursor::after(5);
        assert_eq!(ids(&cursor.take(vec![line(4), line(5), line(6)], Instant::now())), [6]);
    }
}
