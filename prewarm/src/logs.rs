//! Turning a worker's stdout and stderr bytes into bounded, timestamped log lines.
//!
//! A function can print without limit; memory must stay bounded. Lines are kept until the
//! invocation's byte or line budget is spent, then counted and dropped, and one marker line says
//! how much was lost. A single line longer than the line cap is split.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Which pipe a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn as_str(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }
}

/// One line a function printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Microseconds since the Unix epoch, taken when the line was read.
    pub timestamp_us: i64,
    pub stream: LogStream,
    pub text: String,
}

/// Longest line kept whole; longer lines are split.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// Collects one invocation's output.
#[derive(Debug)]
pub struct LogCollector {
    lines: Vec<LogLine>,
    kept_bytes: usize,
    max_bytes: usize,
    max_lines: usize,
    dropped_bytes: u64,
    dropped_lines: u64,
    partial: [Vec<u8>; 2],
    /// Oneshot functions answer on their last stdout line, so that line is held back, not logged.
    hold_last_stdout_line: bool,
    held_stdout_line: Option<String>,
}

impl LogCollector {
    pub fn new(max_bytes: usize, max_lines: usize) -> Self {
        Self {
            lines: Vec::new(),
            kept_bytes: 0,
            max_bytes,
            max_lines,
            dropped_bytes: 0,
            dropped_lines: 0,
            partial: [Vec::new(), Vec::new()],
            hold_last_stdout_line: false,
            held_stdout_line: None,
        }
    }

    /// A collector for oneshot functions: the last complete stdout line is the result.
    pub fn holding_last_stdout_line(max_bytes: usize, max_lines: usize) -> Self {
        Self { hold_last_stdout_line: true, ..Self::new(max_bytes, max_lines) }
    }

    /// Feeds bytes read from one stream.
    pub fn push(&mut self, stream: LogStream, mut bytes: &[u8]) {
        let index = stream as usize;
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            let (line, rest) = bytes.split_at(newline);
            let mut pending = std::mem::take(&mut self.partial[index]);
            pending.extend_from_slice(line);
            self.complete_line(stream, &pending);
            bytes = &rest[1..];
        }
        self.partial[index].extend_from_slice(bytes);
        while self.partial[index].len() > MAX_LINE_BYTES {
            let head: Vec<u8> = self.partial[index].drain(..MAX_LINE_BYTES).collect();
            self.complete_line(stream, &head);
        }
    }

    fn complete_line(&mut self, stream: LogStream, raw: &[u8]) {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = String::from_utf8_lossy(raw).into_owned();
        if self.hold_last_stdout_line && stream == LogStream::Stdout {
            if let Some(previous) = self.held_stdout_line.replace(text) {
                self.keep(LogStream::Stdout, previous);
            }
        } else {
            self.keep(stream, text);
        }
    }

    fn keep(&mut self, stream: LogStream, text: String) {
        let cost = text.len() + 1;
        if self.kept_bytes + cost > self.max_bytes || self.lines.len() >= self.max_lines {
            self.dropped_bytes += cost as u64;
            self.dropped_lines += 1;
            return;
        }
        self.kept_bytes += cost;
        self.lines.push(LogLine { timestamp_us: now_us(), stream, text });
    }

    /// The last `count` complete lines of one stream, oldest first (for crash and start-up reports).
    pub fn recent_lines(&self, stream: LogStream, count: usize) -> Vec<String> {
        let mut recent: Vec<String> = self
            .lines
            .iter()
            .rev()
            .filter(|line| line.stream == stream)
            .take(count)
            .map(|line| line.text.clone())
            .collect();
        if recent.len() < count && !self.partial[stream as usize].is_empty() {
            recent.insert(0, String::from_utf8_lossy(&self.partial[stream as usize]).into_owned());
        }
        recent.reverse();
        recent
    }

    /// True when nothing was collected yet.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.partial.iter().all(Vec::is_empty) && self.held_stdout_line.is_none()
    }

    /// Flushes partial lines and returns the lines, with the truncation marker last if any were dropped.
    pub fn finish(mut self) -> CollectedOutput {
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            let pending = std::mem::take(&mut self.partial[stream as usize]);
            if !pending.is_empty() {
                self.complete_line(stream, &pending);
            }
        }
        if self.dropped_bytes > 0 {
            self.lines.push(LogLine {
                timestamp_us: now_us(),
                stream: LogStream::Stderr,
                text: format!(
                    "[containerpub] log output truncated: {} lines ({} bytes) over the limit of {} lines or {} bytes were dropped",
                    self.dropped_lines, self.dropped_bytes, self.max_lines, self.max_bytes
                ),
            });
        }
        CollectedOutput {
            lines: self.lines,
            dropped_bytes: self.dropped_bytes,
            last_stdout_line: self.held_stdout_line,
        }
    }
}

/// What a collector gathered.
#[derive(Debug, Default)]
pub struct CollectedOutput {
    pub lines: Vec<LogLine>,
    pub dropped_bytes: u64,
    /// Only for collectors made with [`LogCollector::holding_last_stdout_line`].
    pub last_stdout_line: Option<String>,
}

pub fn now_us() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(output: &CollectedOutput) -> Vec<(&str, LogStream)> {
        output.lines.iter().map(|line| (line.text.as_str(), line.stream)).collect()
    }

    #[test]
    fn splits_lines_across_chunks_and_streams() {
        let mut collector = LogCollector::new(1024, 100);
        collector.push(LogStream::Stdout, b"hel");
        collector.push(LogStream::Stderr, b"warn\r\n");
        collector.push(LogStream::Stdout, b"lo\nwor");
        let output = collector.finish();
        assert_eq!(
            texts(&output),
            vec![("warn", LogStream::Stderr), ("hello", LogStream::Stdout), ("wor", LogStream::Stdout)]
        );
    }

    #[test]
    fn a_flood_keeps_memory_bounded_and_ends_with_a_marker() {
        let mut collector = LogCollector::new(100, 100);
        for _ in 0..10_000 {
            collector.push(LogStream::Stdout, b"0123456789\n");
        }
        let output = collector.finish();
        // Nine 11-byte lines fit in 100 bytes; the marker line comes on top.
        assert_eq!(output.lines.len(), 10);
        assert_eq!(output.dropped_bytes, 9_991 * 11);
        assert!(output.lines.last().unwrap().text.contains("log output truncated: 9991 lines (109901 bytes)"));
    }

    #[test]
    fn empty_lines_stop_at_the_line_cap() {
        let mut collector = LogCollector::new(1 << 20, 50);
        collector.push(LogStream::Stdout, &[b'\n'; 262_144]);
        let output = collector.finish();
        assert_eq!(output.lines.len(), 51, "fifty lines and the marker");
        assert!(output.lines[50].text.contains("262094 lines"), "{}", output.lines[50].text);
    }

    #[test]
    fn overlong_lines_are_split_at_the_line_cap() {
        let mut collector = LogCollector::new(1 << 20, 100);
        collector.push(LogStream::Stderr, &vec![b'x'; MAX_LINE_BYTES * 2 + 5]);
        let output = collector.finish();
        let lengths: Vec<usize> = output.lines.iter().map(|line| line.text.len()).collect();
        assert_eq!(lengths, vec![MAX_LINE_BYTES, MAX_LINE_BYTES, 5]);
    }

    #[test]
    fn oneshot_collector_holds_back_the_last_stdout_line() {
        let mut collector = LogCollector::holding_last_stdout_line(1024, 100);
        collector.push(LogStream::Stdout, b"log one\nlog two\n{\"ok\":true}");
        collector.push(LogStream::Stderr, b"err\n");
        let output = collector.finish();
        assert_eq!(output.last_stdout_line.as_deref(), Some("{\"ok\":true}"));
        assert_eq!(
            texts(&output),
            vec![("log one", LogStream::Stdout), ("err", LogStream::Stderr), ("log two", LogStream::Stdout)]
        );
    }
}
