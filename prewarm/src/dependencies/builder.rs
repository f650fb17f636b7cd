//! The confined builder: a package manager run in the same kind of sandbox as the function's
//! workers (its uid, the runtime's read-only root, no new processes, the system-call filter,
//! Landlock, memory and pids caps, a time limit). What it sees besides the runtime: the package
//! manager's files read-only, and writable only the copy of the function it installs into and the
//! shared download cache. Nothing of the server's data directory, nor the function's own
//! directory: a manifest that points outside the package (`file:../../etc`) finds the sandbox's
//! root, not the host's.
//!
//! Offline runs join the loopback-only namespace, where no registry can be reached (what a
//! cached install proves); online runs join the function's own egress namespace, under the egress
//! policy of its workers (no host, private or metadata addresses).
//!
//! With the sandbox off (trusted functions only) the tool runs as a plain child of the server,
//! with the same arguments, environment and time limit.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::limits::WorkerLimits;
use crate::logs::{LogCollector, LogStream};
use crate::output::{drain_until_eof, OutputPipe};
use crate::runtime::Runtime;
use crate::sandbox::{rootfs, BuilderView, Sandbox};
use crate::shells::{Launch, Launched, WorkerPipes};
use crate::spawn::ExitStatus;
use crate::worker::WorkerHost;

/// What a tool run printed, and how it ended.
#[derive(Debug)]
pub struct ToolOutput {
    pub success: bool,
    pub status: String,
    /// stdout and stderr lines as they came, bounded.
    pub lines: Vec<(LogStream, String)>,
}

impl ToolOutput {
    /// The end of what the tool said (stderr, or stdout when stderr is empty), at most 20 lines and
    /// 4 KB, without the package managers' pointers to log files nobody can read.
    pub fn message(&self) -> String {
        let pick = |stream: LogStream| -> Vec<&str> {
            self.lines
                .iter()
                .filter(|(from, text)| *from == stream && !text.trim().is_empty())
                .map(|(_, text)| text.as_str())
                .filter(|text| !text.contains("A complete log of this run can be found in"))
                .collect()
        };
        let mut lines = pick(LogStream::Stderr);
        if lines.is_empty() {
            lines = pick(LogStream::Stdout);
        }
        let mut tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.len() > 4096 {
            let cut = (tail.len() - 4096..tail.len()).find(|index| tail.is_char_boundary(*index)).unwrap_or(0);
            tail = tail[cut..].to_string();
        }
        tail
    }
}

/// Why a tool run gave no output to judge.
#[derive(Debug)]
pub enum ToolFailure {
    TimedOut(Duration),
    NotStarted(String),
}

/// One tool run: `program ARGS` in the build directory, with exactly `env`.
#[derive(Debug)]
pub struct ToolRun {
    pub runtime: Runtime,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub view: BuilderView,
    pub online: bool,
    pub timeout: Duration,
    pub memory_bytes: u64,
}

/// Where the builder's directories are, as the tool sees them.
#[derive(Debug, Clone)]
pub struct ToolPaths {
    pub tool: PathBuf,
    pub output: PathBuf,
    pub cache: PathBuf,
}

/// How tools run: confined as the function's uid, or (sandbox off) as children of the server.
pub(crate) enum Builder<'a> {
    Confined { host: &'a WorkerHost, sandbox: &'a Arc<Sandbox>, uid: u32 },
    Unconfined,
}

/// Lines kept of a tool's output: enough for any error, bounded against a flood.
const MAX_OUTPUT_BYTES: usize = 256 << 10;
const MAX_OUTPUT_LINES: usize = 2_000;

impl Builder<'_> {
    /// The paths a tool is given for `view`.
    pub fn paths(&self, view: &BuilderView) -> ToolPaths {
        match self {
            Builder::Confined { .. } => ToolPaths {
                tool: PathBuf::from(rootfs::TOOL_DIR),
                output: PathBuf::from(rootfs::BUILD_OUTPUT_DIR),
                cache: PathBuf::from(rootfs::CACHE_DIR),
            },
            Builder::Unconfined => ToolPaths {
                tool: view.tool.clone().unwrap_or_default(),
                output: view.output.clone(),
                cache: view.cache.clone(),
            },
        }
    }

    pub async fn run(&self, run: ToolRun) -> Result<ToolOutput, ToolFailure> {
        match self {
            Builder::Confined { host, sandbox, uid } => run_confined(host, sandbox, *uid, run).await,
            Builder::Unconfined => run_unconfined(run).await,
        }
    }
}

async fn run_confined(
    host: &WorkerHost,
    sandbox: &Arc<Sandbox>,
    uid: u32,
    run: ToolRun,
) -> Result<ToolOutput, ToolFailure> {
    let not_started = |message: String| ToolFailure::NotStarted(message);
    // The egress namespace is made with a few `ip` runs the first time: blocking.
    let (sandbox, view, runtime, online, tmp_bytes) =
        (sandbox.clone(), run.view.clone(), run.runtime, run.online, run.memory_bytes / 2);
    let launch = tokio::task::spawn_blocking(move || sandbox.builder_launch(runtime, &view, uid, online, tmp_bytes))
        .await
        .map_err(|error| not_started(format!("preparing the builder's sandbox failed: {error}")))?
        .map_err(not_started)?;
    let shell = host.shells.take().await.map_err(|error| not_started(error.to_string()))?;
    let limits = WorkerLimits { memory_bytes: run.memory_bytes, max_pids: 512, max_open_files: 8192 };
    let directory = PathBuf::from(rootfs::BUILD_OUTPUT_DIR);
    let Launched { mut process, confinement, pipes, .. } = shell
        .launch(Launch {
            program: &run.program,
            args: &run.args,
            env: &run.env,
            directory: &directory,
            limits,
            sandbox: Some(&launch.steps),
        })
        .await
        .map_err(|error| not_started(error.to_string()))?;
    let WorkerPipes { stdout, stderr, .. } = pipes;
    let mut stdout = OutputPipe::new(stdout, LogStream::Stdout).map_err(|error| not_started(error.to_string()))?;
    let mut stderr = OutputPipe::new(stderr, LogStream::Stderr).map_err(|error| not_started(error.to_string()))?;
    let mut logs = LogCollector::new(MAX_OUTPUT_BYTES, MAX_OUTPUT_LINES);
    let deadline = Instant::now() + run.timeout;
    let ended = loop {
        tokio::select! {
            read = stdout.read() => stdout.absorb(read, &mut logs),
            read = stderr.read() => stderr.absorb(read, &mut logs),
            status = process.wait() => {
                drain_until_eof(&mut stdout, &mut stderr, &mut logs, Duration::from_millis(100)).await;
                break Some(status);
            }
            _ = tokio::time::sleep_until(deadline) => break None,
        }
    };
    process.kill_group();
    if ended.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(5), process.wait()).await;
    }
    let memory_hit = confinement.memory_limit_hit();
    let pending = host.shells.cleanups.guard();
    tokio::task::spawn_blocking(move || {
        confinement.release();
        drop(pending);
    });
    drop(launch.network);
    let Some(status) = ended else { return Err(ToolFailure::TimedOut(run.timeout)) };
    let lines = logs.finish().lines.into_iter().map(|line| (line.stream, line.text)).collect();
    let status_text = match status {
        _ if memory_hit => format!("it was stopped at its {} MB memory cap", run.memory_bytes >> 20),
        other => other.to_string(),
    };
    Ok(ToolOutput { success: matches!(status, ExitStatus::Exited(0)) && !memory_hit, status: status_text, lines })
}

async fn run_unconfined(run: ToolRun) -> Result<ToolOutput, ToolFailure> {
    let mut command = tokio::process::Command::new(&run.program);
    command
        .args(&run.args)
        .current_dir(&run.view.output)
        .env_clear()
        .envs(run.env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = match tokio::time::timeout(run.timeout, command.output()).await {
        Err(_) => return Err(ToolFailure::TimedOut(run.timeout)),
        Ok(Err(error)) => {
            return Err(ToolFailure::NotStarted(format!("{} could not start: {error}", run.program.display())))
        }
        Ok(Ok(output)) => output,
    };
    let mut lines = Vec::new();
    for (stream, bytes) in [(LogStream::Stdout, &output.stdout), (LogStream::Stderr, &output.stderr)] {
        lines.extend(String::from_utf8_lossy(bytes).lines().map(|line| (stream, line.to_string())));
    }
    Ok(ToolOutput { success: output.status.success(), status: output.status.to_string(), lines })
}
