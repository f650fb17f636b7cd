//! Oneshot functions (the seed's `main()`-only model): one process per invocation.
//!
//! The event reaches the program through its environment (`FUNCTION_INPUT`, `HTTP_BODY`,
//! `HTTP_QUERY`, `HTTP_METHOD`); its last stdout line is its JSON result and every other line is a
//! log line. Limits, the deadline and the kill are the same as for warm workers.

use std::time::Duration;

use tokio::time::Instant;

use crate::limits::{rss, Enforcement, WorkerConfinement, WorkerLimits};
use crate::logs::{LogCollector, LogStream};
use crate::outcome::{Invocation, InvocationError, Outcome};
use crate::output::{drain_until_eof, OutputPipe};
use crate::protocol::InvocationEvent;
use crate::script_mode::script_advice;
use crate::shells::{Launch, Launched, WorkerPipes};
use crate::spawn::ExitStatus;
use crate::worker::{WorkerHost, WorkerLaunch};
use crate::{FunctionLimits, FunctionSpec};

/// Linux refuses a single environment string over 32 pages (`MAX_ARG_STRLEN`).
const MAX_ENV_VALUE_BYTES: usize = 128 * 1024 - 64;

/// The variables a oneshot program reads its request from.
pub fn oneshot_env(event: &InvocationEvent) -> Vec<(String, String)> {
    let body_value: serde_json::Value = match &event.body {
        None => serde_json::json!({}),
        Some(text) if !event.body_is_base64 => {
            serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.clone()))
        }
        Some(text) => serde_json::Value::String(text.clone()),
    };
    let query = serde_json::to_string(&event.query).expect("maps of strings serialize");
    // The seed's shape: its executor passed `body`, `query`, `headers` and `method`.
    let input = serde_json::json!({
        "body": body_value, "query": event.query, "headers": event.headers, "method": event.method,
    });
    vec![
        ("FUNCTION_INPUT".into(), input.to_string()),
        ("HTTP_BODY".into(), event.body.clone().unwrap_or_default()),
        ("HTTP_QUERY".into(), query),
        ("HTTP_METHOD".into(), event.method.clone()),
    ]
}

pub(crate) struct OneshotRun<'a> {
    pub host: &'a WorkerHost,
    pub launch: &'a WorkerLaunch,
    pub limits: &'a FunctionLimits,
    /// For the advice a script gets when its output is not a result.
    pub spec: &'a FunctionSpec,
}

impl OneshotRun<'_> {
    pub async fn run(&self, id: &str, function_key: &str, event: &InvocationEvent, queue_us: u64) -> Invocation {
        let mut invocation = Invocation::new(id.into(), function_key.into(), queue_us);
        invocation.cold = true;
        let request_env = oneshot_env(event);
        invocation.bytes_in = request_env.iter().map(|(_, value)| value.len() as u64).sum();
        if let Some((name, value)) = request_env.iter().find(|(_, value)| value.len() > MAX_ENV_VALUE_BYTES) {
            invocation.outcome = Outcome::FunctionError;
            invocation.error = Some(InvocationError::new(
                "request_too_large",
                format!("{name} would be {} bytes; main()-only functions take requests up to {MAX_ENV_VALUE_BYTES} bytes (use a handler function for larger ones)", value.len()),
            ));
            return invocation;
        }
        let limits = self.limits.worker_limits();
        let started = Instant::now();
        let mut logs = LogCollector::holding_last_stdout_line(self.limits.max_log_bytes, self.limits.max_log_lines);
        let ran = self.spawn_and_wait(limits, request_env, &mut logs).await;
        invocation.exec_us = started.elapsed().as_micros() as u64;
        let ran = ran.map(|(run, confinement)| {
            invocation.peak_memory_bytes = confinement.peak_memory_bytes().or(run.peak_rss_sample);
            let memory_hit = confinement.memory_limit_hit();
            let pending = self.host.shells.cleanups.guard();
            tokio::task::spawn_blocking(move || {
                confinement.release();
                drop(pending);
            });
            (run, memory_hit)
        });
        let (run, memory_hit) = match ran {
            Ok(ran) => ran,
            Err(message) => return unavailable(invocation, message),
        };
        let output = logs.finish();
        invocation.worker_pid = Some(run.pid);
        invocation.log_bytes_dropped = output.dropped_bytes;
        let stderr_tail: Vec<&str> = output
            .lines
            .iter()
            .rev()
            .filter(|line| line.stream == LogStream::Stderr)
            .take(40)
            .map(|line| line.text.as_str())
            .collect();
        let (outcome, error) = match run.end {
            OneshotEnd::TimedOut => (
                Outcome::Timeout,
                InvocationError::new(
                    "timeout",
                    format!("the function did not finish within {} ms", self.limits.timeout.as_millis()),
                ),
            ),
            OneshotEnd::RssExceeded(rss_bytes) => (
                Outcome::MemoryLimit,
                InvocationError::new(
                    "memory_limit",
                    format!(
                        "the function used {} MB, over its {} MB cap",
                        rss_bytes >> 20,
                        self.limits.memory_bytes >> 20
                    ),
                ),
            ),
            OneshotEnd::Exited(_) if memory_hit => (
                Outcome::MemoryLimit,
                InvocationError::new(
                    "memory_limit",
                    format!(
                        "the function exceeded its {} MB memory cap and was killed",
                        self.limits.memory_bytes >> 20
                    ),
                ),
            ),
            OneshotEnd::Exited(ExitStatus::Exited(0)) => match output.last_stdout_line.as_deref().map(str::trim) {
                Some(line) if line.len() > self.limits.max_result_bytes => (
                    Outcome::FunctionError,
                    InvocationError::new(
                        "result_too_large",
                        format!(
                            "the result is {} bytes; the limit is {} bytes",
                            line.len(),
                            self.limits.max_result_bytes
                        ),
                    ),
                ),
                Some(line) => match serde_json::from_str::<serde_json::Value>(line) {
                    Ok(result) => {
                        invocation.bytes_out = line.len() as u64;
                        invocation.result = Some(result);
                        invocation.logs = output.lines;
                        return invocation;
                    }
                    Err(error) => (
                        Outcome::Crashed,
                        InvocationError::new(
                            "invalid_output",
                            format!(
                                "the last line printed is not JSON ({error}): {}. {}",
                                truncate(line, 200),
                                script_advice(self.spec.runtime, &self.spec.entry)
                            ),
                        ),
                    ),
                },
                None => (
                    Outcome::Crashed,
                    InvocationError::new(
                        "invalid_output",
                        format!(
                            "the function printed no result line. {}",
                            script_advice(self.spec.runtime, &self.spec.entry)
                        ),
                    ),
                ),
            },
            OneshotEnd::Exited(ExitStatus::Exited(code)) => {
                let mut error =
                    InvocationError::new("function_error", format!("the function exited with status {code}"));
                let oldest_first: Vec<&str> = stderr_tail.iter().rev().copied().collect();
                // The cause when a line reads like one (Node prints it mid-way), else the last lines.
                let said = crate::failure_cause::cause(&oldest_first)
                    .unwrap_or_else(|| oldest_first[oldest_first.len().saturating_sub(3)..].join(" | "));
                if !said.is_empty() {
                    error.message = format!("{}: {said}", error.message);
                }
                (Outcome::FunctionError, error)
            }
            OneshotEnd::Exited(status) => {
                (Outcome::Crashed, InvocationError::new("crashed", format!("the function was {status}")))
            }
        };
        invocation.outcome = outcome;
        invocation.error = Some(error);
        invocation.logs = output.lines;
        invocation
    }

    async fn spawn_and_wait(
        &self,
        limits: WorkerLimits,
        request_env: Vec<(String, String)>,
        logs: &mut LogCollector,
    ) -> Result<(OneshotRunResult, WorkerConfinement), String> {
        let mut env = self.launch.env.clone();
        env.extend(request_env);
        let shell = self.host.shells.take().await.map_err(|error| error.to_string())?;
        let launch = Launch {
            program: &self.launch.program,
            args: &self.launch.args,
            env: &env,
            directory: &self.launch.directory,
            limits,
            sandbox: self.launch.sandbox.as_ref(),
        };
        let Launched { mut process, runtime_pid, confinement, pipes } =
            shell.launch(launch).await.map_err(|error| error.to_string())?;
        // A oneshot program answers on stdout; the protocol pipes stay unused and are closed here.
        let WorkerPipes { stdout: stdout_read, stderr: stderr_read, .. } = pipes;
        let mut stdout = OutputPipe::new(stdout_read, LogStream::Stdout).map_err(|error| error.to_string())?;
        let mut stderr = OutputPipe::new(stderr_read, LogStream::Stderr).map_err(|error| error.to_string())?;
        let deadline = Instant::now() + self.limits.timeout;
        let watch_rss = matches!(self.host.enforcement, Enforcement::Rlimit);
        let mut watchdog = tokio::time::interval(self.host.rss_watchdog_interval);
        let mut peak_rss_sample = None;
        let pid = runtime_pid;
        let end = loop {
            tokio::select! {
                read = stdout.read() => stdout.absorb(read, logs),
                read = stderr.read() => stderr.absorb(read, logs),
                status = process.wait() => {
                    // Collect what is still in the pipes; descendants holding them open get 100 ms.
                    drain_until_eof(&mut stdout, &mut stderr, logs, Duration::from_millis(100)).await;
                    break OneshotEnd::Exited(status);
                }
                _ = tokio::time::sleep_until(deadline) => break OneshotEnd::TimedOut,
                _ = watchdog.tick(), if watch_rss => {
                    if let Some(rss_bytes) = rss::current_rss_bytes(&self.host.proc_root, pid) {
                        peak_rss_sample = peak_rss_sample.max(Some(rss_bytes));
                        if rss_bytes > self.limits.memory_bytes {
                            break OneshotEnd::RssExceeded(rss_bytes);
                        }
                    }
                }
            }
        };
        // Descendants that outlived the program die with it, whatever the ending.
        process.kill_group();
        if !matches!(end, OneshotEnd::Exited(_)) {
            let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
        }
        Ok((OneshotRunResult { end, pid, peak_rss_sample }, confinement))
    }
}

enum OneshotEnd {
    Exited(ExitStatus),
    TimedOut,
    RssExceeded(u64),
}

struct OneshotRunResult {
    end: OneshotEnd,
    pid: i32,
    peak_rss_sample: Option<u64>,
}

fn unavailable(mut invocation: Invocation, message: String) -> Invocation {
    invocation.outcome = Outcome::RuntimeUnavailable;
    invocation.error = Some(InvocationError::new("runtime_unavailable", message));
    invocation
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneshot_environment_follows_the_seed() {
        let mut event = InvocationEvent { method: "POST".into(), path: "/".into(), ..Default::default() }
            .with_raw_body(br#"{"name":"Ada"}"#);
        event.query.insert("lang".into(), "en".into());
        let env: std::collections::HashMap<_, _> = oneshot_env(&event).into_iter().collect();
        assert_eq!(
            env["FUNCTION_INPUT"],
            r#"{"body":{"name":"Ada"},"headers":{},"method":"POST","query":{"lang":"en"}}"#
        );
        assert_eq!(env["HTTP_BODY"], r#"{"name":"Ada"}"#);
        assert_eq!(env["HTTP_QUERY"], r#"{"lang":"en"}"#);
        assert_eq!(env["HTTP_METHOD"], "POST");
    }
}
