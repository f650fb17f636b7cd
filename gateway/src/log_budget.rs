//! What a function may log: one budget per call, and a rate per function.
//!
//! Every row a call produces is stored as a log line: what it printed on stdout and stderr, then
//! its error's stack trace. An exception whose message has a million lines was a million rows;
//! 256 KiB of empty lines was 262,144. So each call's lines, in that order, are admitted against
//! one budget of lines *and* bytes (`[logs] max_lines_per_call`, `max_bytes_per_call`), and then
//! against its function's rate (`max_lines_per_second`, `max_bytes_per_second`: a token bucket
//! that holds at most a second's worth or a whole call's, whichever is more). What either refuses
//! is dropped, counted, and summarized in one line at the end of the call's lines, which is
//! always kept: the owner sees that output went missing, how much, and which limit bit.
//!
//! Lines printed outside any call (while loading, or idle) pass the same rate, one at a time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use prewarm::{LogLine, LogStream};

use crate::config::LogsConfig;

/// A row's cost beyond its text, so that empty lines are not free.
pub const ROW_OVERHEAD_BYTES: u64 = 64;

#[derive(Debug)]
pub struct LogBudget {
    config: LogsConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Lines dropped by the per-call budget and by the rate, for `/metrics`.
    pub dropped_over_call_budget: AtomicU64,
    pub dropped_over_rate: AtomicU64,
}

#[derive(Debug)]
struct Bucket {
    lines: f64,
    bytes: f64,
    refilled: Instant,
}

/// What was dropped from one call, and why.
#[derive(Debug, Default, PartialEq, Eq)]
struct Dropped {
    over_call: (u64, u64),
    over_rate: (u64, u64),
}

impl LogBudget {
    pub fn new(config: LogsConfig) -> Self {
        Self {
            config,
            buckets: Mutex::default(),
            dropped_over_call_budget: AtomicU64::new(0),
            dropped_over_rate: AtomicU64::new(0),
        }
    }

    fn cost(text: &str) -> u64 {
        text.len() as u64 + ROW_OVERHEAD_BYTES
    }

    /// The lines of one call to keep, in order, with a summary line last when any were dropped.
    pub fn admit_call(&self, function_id: &str, lines: impl IntoIterator<Item = LogLine>) -> Vec<LogLine> {
        let mut lines = lines.into_iter().peekable();
        if lines.peek().is_none() {
            // Most calls print nothing: no lock, no bucket on the warm path.
            return Vec::new();
        }
        let mut kept = Vec::new();
        let mut dropped = Dropped::default();
        let (mut call_lines, mut call_bytes) = (0u64, 0u64);
        let mut last_timestamp_us = 0;
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = self.bucket(&mut buckets, function_id);
        for line in lines {
            last_timestamp_us = last_timestamp_us.max(line.timestamp_us);
            let cost = Self::cost(&line.text);
            if call_lines + 1 > self.config.max_lines_per_call || call_bytes + cost > self.config.max_bytes_per_call {
                dropped.over_call.0 += 1;
                dropped.over_call.1 += line.text.len() as u64;
                continue;
            }
            call_lines += 1;
            call_bytes += cost;
            if bucket.lines < 1.0 || bucket.bytes < cost as f64 {
                dropped.over_rate.0 += 1;
                dropped.over_rate.1 += line.text.len() as u64;
                continue;
            }
            bucket.lines -= 1.0;
            bucket.bytes -= cost as f64;
            kept.push(line);
        }
        drop(buckets);
        if dropped != Dropped::default() {
            self.dropped_over_call_budget.fetch_add(dropped.over_call.0, Ordering::Relaxed);
            self.dropped_over_rate.fetch_add(dropped.over_rate.0, Ordering::Relaxed);
            kept.push(LogLine {
                timestamp_us: last_timestamp_us,
                stream: LogStream::Stderr,
                text: self.summary(&dropped),
            });
        }
        kept
    }

    /// Whether one line printed outside any call is kept (the rate only).
    pub fn admit_stray(&self, function_id: &str, text: &str) -> bool {
        let cost = Self::cost(text);
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = self.bucket(&mut buckets, function_id);
        if bucket.lines < 1.0 || bucket.bytes < cost as f64 {
            self.dropped_over_rate.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        bucket.lines -= 1.0;
        bucket.bytes -= cost as f64;
        true
    }

    /// The function's bucket, refilled for the time since it was last used.
    fn bucket<'a>(&self, buckets: &'a mut HashMap<String, Bucket>, function_id: &str) -> &'a mut Bucket {
        let (most_lines, most_bytes) = self.burst();
        let now = Instant::now();
        if !buckets.contains_key(function_id) {
            // Forget functions whose buckets are full again: they hold nothing to remember.
            if buckets.len() >= 4_096 {
                buckets.retain(|_, bucket| now.duration_since(bucket.refilled).as_secs_f64() < self.full_after_secs());
            }
            buckets.insert(function_id.to_string(), Bucket { lines: most_lines, bytes: most_bytes, refilled: now });
        }
        let bucket = buckets.get_mut(function_id).expect("inserted above");
        let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
        bucket.lines = (bucket.lines + elapsed * self.config.max_lines_per_second as f64).min(most_lines);
        bucket.bytes = (bucket.bytes + elapsed * self.config.max_bytes_per_second as f64).min(most_bytes);
        bucket.refilled = now;
        bucket
    }

    fn burst(&self) -> (f64, f64) {
        let config = &self.config;
        (
            config.max_lines_per_second.max(config.max_lines_per_call) as f64,
            config.max_bytes_per_second.max(config.max_bytes_per_call) as f64,
        )
    }

    fn full_after_secs(&self) -> f64 {
        let (lines, bytes) = self.burst();
        (lines / self.config.max_lines_per_second as f64).max(bytes / self.config.max_bytes_per_second as f64)
    }

    fn summary(&self, dropped: &Dropped) -> String {
        let config = &self.config;
        let mut parts = Vec::new();
        if dropped.over_call.0 > 0 {
            parts.push(format!(
                "{} lines ({} bytes) over this call's limit of {} lines or {} bytes",
                dropped.over_call.0, dropped.over_call.1, config.max_lines_per_call, config.max_bytes_per_call
            ));
        }
        if dropped.over_rate.0 > 0 {
            parts.push(format!(
                "{} lines ({} bytes) over the function's rate of {} lines or {} bytes a second",
                dropped.over_rate.0, dropped.over_rate.1, config.max_lines_per_second, config.max_bytes_per_second
            ));
        }
        format!(
            "[containerpub] log lines dropped: {} (each line costs its bytes + {ROW_OVERHEAD_BYTES})",
            parts.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str) -> LogLine {
        LogLine { timestamp_us: 1, stream: LogStream::Stdout, text: text.to_string() }
    }

    fn budget(per_call_lines: u64, per_second_lines: u64) -> LogBudget {
        LogBudget::new(LogsConfig {
            max_lines_per_call: per_call_lines,
            max_lines_per_second: per_second_lines,
            ..LogsConfig::default()
        })
    }

    #[test]
    fn a_million_empty_lines_are_a_call_budget_and_one_summary() {
        let budget = budget(100, 10_000);
        let kept = budget.admit_call("fn_a", (0..1_000_000).map(|_| line("")));
        assert_eq!(kept.len(), 101);
        let summary = &kept.last().unwrap().text;
        assert!(summary.contains("999900 lines (0 bytes) over this call's limit of 100 lines"), "{summary}");
        assert_eq!(budget.dropped_over_call_budget.load(Ordering::Relaxed), 999_900);
    }

    #[test]
    fn bytes_count_too_with_each_rows_overhead() {
        let budget = LogBudget::new(LogsConfig { max_bytes_per_call: 1_000, ..LogsConfig::default() });
        // 36 bytes of text + 64 of overhead: ten lines fit in 1,000 bytes.
        let kept = budget.admit_call("fn_a", (0..50).map(|_| line(&"x".repeat(36))));
        assert_eq!(kept.len(), 11);
        assert!(kept[10].text.contains("40 lines (1440 bytes)"), "{}", kept[10].text);
    }

    #[test]
    fn a_functions_rate_is_its_own_and_refills() {
        // Bursts to a whole call's worth (100 lines), refills at 100 lines a second.
        let budget = budget(100, 100);
        assert_eq!(budget.admit_call("fn_a", (0..100).map(|_| line("a"))).len(), 100);
        let second = budget.admit_call("fn_a", (0..100).map(|_| line("a")));
        assert!(second.len() < 10, "the bucket is empty: {}", second.len());
        assert!(second.last().unwrap().text.contains("over the function's rate of 100 lines"));
        assert!(!budget.admit_stray("fn_a", "idle"), "lines printed between calls pass the same rate");
        assert_eq!(budget.admit_call("fn_b", (0..100).map(|_| line("b"))).len(), 100, "another function's own bucket");
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(budget.admit_stray("fn_a", "idle"));
        let refilled = budget.admit_call("fn_a", (0..100).map(|_| line("a")));
        assert!((20..=45).contains(&(refilled.len() - 1)), "about 30 lines came back: {}", refilled.len());
    }

    #[test]
    fn nothing_dropped_means_no_summary() {
        let budget = budget(100, 100);
        let kept = budget.admit_call("fn_a", vec![line("one"), line("two")]);
        assert_eq!(kept.iter().map(|line| line.text.as_str()).collect::<Vec<_>>(), ["one", "two"]);
    }
}
