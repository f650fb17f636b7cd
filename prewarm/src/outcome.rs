//! The outcome and statistics of one invocation: what the gateway answers and what it records.

use serde::Serialize;

use crate::logs::LogLine;

/// How an invocation ended. Each has its own HTTP status in the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// The function threw, or returned something that is not a valid result.
    FunctionError,
    /// The deadline passed; the worker was killed.
    Timeout,
    /// The worker exceeded its memory cap and was killed.
    MemoryLimit,
    /// The worker died or broke the protocol.
    Crashed,
    /// Rejected: the function's queue was full.
    QueueFull,
    /// Rejected: the invocation waited longer than the queue allows.
    WaitExceeded,
    /// The runtime is not installed, or the function cannot start.
    RuntimeUnavailable,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::FunctionError,
        Outcome::Timeout,
        Outcome::MemoryLimit,
        Outcome::Crashed,
        Outcome::QueueFull,
        Outcome::WaitExceeded,
        Outcome::RuntimeUnavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::FunctionError => "function_error",
            Outcome::Timeout => "timeout",
            Outcome::MemoryLimit => "memory_limit",
            Outcome::Crashed => "crashed",
            Outcome::QueueFull => "queue_full",
            Outcome::WaitExceeded => "wait_exceeded",
            Outcome::RuntimeUnavailable => "runtime_unavailable",
        }
    }

    /// True for rejections that happened before any worker ran.
    pub fn is_rejection(self) -> bool {
        matches!(self, Outcome::QueueFull | Outcome::WaitExceeded | Outcome::RuntimeUnavailable)
    }
}

/// Why an invocation did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvocationError {
    /// Stable, machine-readable: for example `function_error`, `result_too_large`, `timeout`.
    pub code: String,
    pub message: String,
    /// The runtime's error class, for function errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
}

impl InvocationError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.to_string(), message: message.into(), error_type: None, stack: None }
    }
}

/// Everything known about one invocation once it ended.
#[derive(Debug, Clone, Serialize)]
pub struct Invocation {
    pub id: String,
    pub function_key: String,
    pub outcome: Outcome,
    /// The function's JSON result, for [`Outcome::Ok`].
    pub result: Option<serde_json::Value>,
    pub error: Option<InvocationError>,
    /// True when the caller waited for a worker to start.
    pub cold: bool,
    pub queue_us: u64,
    /// Worker start-up (cold only) is not included: this is the function's own execution.
    pub exec_us: u64,
    /// The worker's peak memory so far (cgroup peak, else the process's VmHWM).
    pub peak_memory_bytes: Option<u64>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub logs: Vec<LogLine>,
    pub log_bytes_dropped: u64,
    pub worker_pid: Option<i32>,
    /// For a rejection: in how many seconds the function's queue should have room again, from
    /// its queue length and its recent completion rate (at least 1).
    pub retry_after_seconds: Option<u64>,
}

impl Invocation {
    /// An invocation that has not ended yet: no result, no error, nothing measured.
    pub(crate) fn new(id: String, function_key: String, queue_us: u64) -> Self {
        Self {
            id,
            function_key,
            outcome: Outcome::Ok,
            result: None,
            error: None,
            cold: false,
            queue_us,
            exec_us: 0,
            peak_memory_bytes: None,
            bytes_in: 0,
            bytes_out: 0,
            logs: Vec::new(),
            log_bytes_dropped: 0,
            worker_pid: None,
            retry_after_seconds: None,
        }
    }

    pub(crate) fn rejected(
        id: String,
        function_key: String,
        outcome: Outcome,
        error: InvocationError,
        queue_us: u64,
    ) -> Self {
        Self { outcome, error: Some(error), ..Self::new(id, function_key, queue_us) }
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), saying how much was cut.
pub fn shortened(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let cut = text.len() - end;
    // A new string: truncating would keep the megabytes allocated until the call is recorded.
    format!("{}… [{cut} more bytes cut]", &text[..end])
}

/// The error code of an invocation that never reached a worker because its version was retired
/// (replaced or deleted) while it waited: `Prewarm::invoke` hands such a request back.
pub const RETIRED_BEFORE_IT_RAN: &str = "function_retired";

#[cfg(test)]
mod shortened_tests {
    #[test]
    fn long_texts_keep_their_head_and_say_how_much_went() {
        assert_eq!(super::shortened("short".into(), 10), "short");
        assert_eq!(super::shortened("ééééé".into(), 5), "éé… [6 more bytes cut]");
    }
}
