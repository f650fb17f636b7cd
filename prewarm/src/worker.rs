//! One warm worker process: start it, wait for `ready`, run invocations on it, kill it.
//!
//! During an invocation the calling task owns the worker outright and multiplexes, in one loop, the
//! request write, the reply read, both log pipes, the process's exit, the deadline and (without a
//! memory cgroup) the RSS watchdog. No per-worker task and no channel hop sit on the hot path.
//! Output a worker prints while idle waits in its pipe and is drained when it is next leased.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::time::Instant;

use crate::limits::{rss, Enforcement, WorkerConfinement, WorkerLimits};
use crate::logs::{LogCollector, LogStream};
use crate::output::{drain_until_eof, OutputPipe};
use crate::protocol::{DecodedFrame, FrameDecoder, FunctionError, WorkerFrame};
use crate::shells::{Launch, Launched, PendingCleanups, ShellError, ShellPool, WorkerPipes};
use crate::spawn::{ChildProcess, ExitStatus};

const READ_CHUNK: usize = 32 * 1024;

/// How to start the workers of one function version; computed once by `prepare`.
#[derive(Debug, Clone)]
pub(crate) struct WorkerLaunch {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The working directory as the worker sees it (`/fn` in the sandbox).
    pub directory: PathBuf,
    pub sandbox: Option<crate::sandbox::enter::SandboxSteps>,
    /// Kept while the version runs: its workers join this namespace by path.
    pub _network: Option<crate::sandbox::network::OwnNetwork>,
    /// Dart: where builds are compiled, whose paths a compiled function's stack frames keep.
    pub dart_builds_dir: Option<PathBuf>,
}

/// What every worker start needs from the pool.
#[derive(Debug)]
pub(crate) struct WorkerHost {
    pub shells: Arc<ShellPool>,
    pub enforcement: Enforcement,
    pub proc_root: PathBuf,
    pub rss_watchdog_interval: Duration,
}

/// Why a worker did not become ready.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartFailure {
    /// The runtime is missing on this host.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Shell(#[from] ShellError),
    #[error("register the worker's pipes: {0}")]
    Pipes(std::io::Error),
    #[error("the function failed to load: {}", crate::failure_cause::with_advice(&format!("{}: {}", .0.error_type, .0.message)))]
    LoadError(FunctionError),
    /// The module loaded but has nothing to call: a script (see `FunctionEntry::settle_by_loading`).
    #[error("{0}")]
    NoHandler(String),
    #[error("the worker {status} before it said ready{}", describe_output(.output_tail))]
    Exited { status: ExitStatus, output_tail: Vec<String> },
    #[error("the worker did not report ready within {0:?}")]
    Timeout(Duration),
    #[error("the worker broke the protocol during start-up: {0}")]
    Protocol(String),
}

fn describe_output(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {}", tail.join(" | "))
    }
}

/// The raw end of one invocation on a worker, before the pool classifies it.
#[derive(Debug)]
pub(crate) enum RawReply {
    Replied {
        ok: bool,
        result: serde_json::Value,
        error: Option<FunctionError>,
        bytes_out: u64,
    },
    TooLarge {
        declared_bytes: usize,
    },
    TimedOut,
    /// The worker closed its reply pipe or exited.
    Exited(Option<ExitStatus>),
    /// The watchdog saw the worker's RSS above its cap.
    RssExceeded {
        rss_bytes: u64,
    },
    Broken(String),
}

#[derive(Debug)]
pub(crate) struct Worker {
    pub id: u64,
    pub process: ChildProcess,
    /// Where the runtime's memory is read (see `Launched::runtime_pid`).
    runtime_pid: i32,
    pub confinement: WorkerConfinement,
    requests: pipe::Sender,
    responses: pipe::Receiver,
    stdout: OutputPipe,
    stderr: OutputPipe,
    decoder: FrameDecoder,
    response_buffer: Vec<u8>,
    pub served: u64,
    pub last_used: Instant,
    pub cleanups: PendingCleanups,
    /// What the adapter said it calls and serves (its `ready` frame), for the deploy's explanation.
    pub ready: ReadyReport,
    /// Whether the pipes are registered with the runtime that leases the worker (see `rebind`).
    rebound: bool,
}

/// What a worker's `ready` frame said: what it calls, and in which shape.
#[derive(Debug, Clone, Default)]
pub struct ReadyReport {
    pub handler: Option<String>,
    pub shape: Option<crate::shape::Shape>,
    pub shape_reason: Option<String>,
}

impl Worker {
    /// Spawns a worker and waits until it reports ready. Start-up output goes to `startup_logs`.
    pub async fn start(
        host: &WorkerHost,
        launch: &WorkerLaunch,
        limits: WorkerLimits,
        id: u64,
        max_frame_bytes: usize,
        startup_timeout: Duration,
        startup_logs: &mut LogCollector,
    ) -> Result<Worker, StartFailure> {
        let shell = host.shells.take().await?;
        let launched = shell
            .launch(Launch {
                program: &launch.program,
                args: &launch.args,
                env: &launch.env,
                directory: &launch.directory,
                limits,
                sandbox: launch.sandbox.as_ref(),
            })
            .await?;
        let Launched {
            mut process,
            runtime_pid,
            confinement,
            pipes: WorkerPipes { requests, responses, stdout, stderr },
        } = launched;
        // Registering the pipes with the reactor cannot fail for pipes we just made, but if it
        // does, the launched process must not outlive the error.
        let registered = (|| {
            Ok::<_, std::io::Error>((
                pipe::Sender::from_owned_fd(requests)?,
                pipe::Receiver::from_owned_fd(responses)?,
                OutputPipe::new(stdout, LogStream::Stdout)?,
                OutputPipe::new(stderr, LogStream::Stderr)?,
            ))
        })();
        let (requests, responses, stdout, stderr) = match registered {
            Ok(registered) => registered,
            Err(error) => {
                process.kill_group();
                process.wait().await;
                let _ = tokio::task::spawn_blocking(move || confinement.release()).await;
                return Err(StartFailure::Pipes(error));
            }
        };
        let started_at = Instant::now();
        let mut worker = Worker {
            id,
            process,
            runtime_pid,
            confinement,
            requests,
            responses,
            stdout,
            stderr,
            decoder: FrameDecoder::new(max_frame_bytes),
            response_buffer: vec![0; READ_CHUNK],
            served: 0,
            last_used: started_at,
            cleanups: host.shells.cleanups.clone(),
            ready: ReadyReport::default(),
            rebound: false,
        };
        match worker.await_ready(startup_timeout, startup_logs).await {
            Ok(ready) => {
                worker.ready = ready;
                Ok(worker)
            }
            Err(failure) => {
                worker.kill_and_reap().await;
                Err(failure)
            }
        }
    }

    /// Waits for `ready`; returns what the adapter said it calls.
    async fn await_ready(
        &mut self,
        startup_timeout: Duration,
        logs: &mut LogCollector,
    ) -> Result<ReadyReport, StartFailure> {
        let deadline = Instant::now() + startup_timeout;
        loop {
            match self.next_event(deadline, logs, None).await {
                Event::Frame(DecodedFrame::Frame(payload)) => {
                    return match serde_json::from_slice::<WorkerFrame>(&payload) {
                        Ok(WorkerFrame::Ready { handler, shape, shape_reason, .. }) => {
                            Ok(ReadyReport { handler, shape: shape.and_then(|name| name.parse().ok()), shape_reason })
                        }
                        Ok(WorkerFrame::LoadError { error }) => Err(StartFailure::LoadError(error)),
                        Ok(WorkerFrame::NoHandler { message }) => Err(StartFailure::NoHandler(message)),
                        Ok(other) => Err(StartFailure::Protocol(format!("expected ready, got {other:?}"))),
                        Err(error) => Err(StartFailure::Protocol(format!("invalid frame: {error}"))),
                    };
                }
                Event::Frame(DecodedFrame::TooLarge { declared_bytes }) => {
                    return Err(StartFailure::Protocol(format!("a {declared_bytes}-byte frame instead of ready")))
                }
                Event::Closed | Event::ProcessExited => {
                    let status = self.wait_briefly().await;
                    self.drain_output_until_eof(logs).await;
                    return Err(StartFailure::Exited {
                        status: status.unwrap_or(ExitStatus::Signaled(nix::libc::SIGKILL)),
                        output_tail: output_tail(logs),
                    });
                }
                Event::DeadlinePassed => return Err(StartFailure::Timeout(startup_timeout)),
                Event::RssAbove(_) | Event::Progress => {}
                Event::Failed(error) => return Err(StartFailure::Protocol(error)),
            }
        }
    }

    /// Registers the pipes with the reactor of the runtime calling this, once, at the first call.
    ///
    /// A pipe wakes its reader through the reactor it was registered with. A worker started on
    /// another runtime (the gateway warms versions on its platform runtime, calls come on
    /// pingora's) would otherwise cost two thread wake-ups per reply: that runtime's I/O thread,
    /// then the caller's. Workers are leased from one runtime in practice; one leased from several
    /// still works, with that extra hop.
    ///
    /// The new registration is made on a duplicate of each descriptor before the old one is
    /// dropped, so a failure leaves the pipe working where it was.
    pub fn rebind(&mut self) {
        if self.rebound {
            return;
        }
        self.rebound = true;
        let rebound = (|| {
            self.requests = pipe::Sender::from_owned_fd(self.requests.as_fd().try_clone_to_owned()?)?;
            self.responses = pipe::Receiver::from_owned_fd(self.responses.as_fd().try_clone_to_owned()?)?;
            self.stdout.rebind()?;
            self.stderr.rebind()
        })();
        if let Err(error) = rebound {
            tracing::debug!(worker = self.id, %error, "worker pipes stay on the runtime that started them");
        }
    }

    /// Marks the pipes as registered where they are (a worker started by the task that leases it).
    pub fn mark_rebound(&mut self) {
        self.rebound = true;
    }

    /// Sends one request frame and waits for its reply, collecting output into `logs`.
    pub async fn invoke(
        &mut self,
        request_frame: &[u8],
        request_id: &str,
        deadline: Instant,
        logs: &mut LogCollector,
        rss_limit: Option<(&Path, u64, Duration)>,
    ) -> RawReply {
        if let Err(error) = self.write_request(request_frame, deadline, logs).await {
            return error;
        }
        let mut watchdog = rss_limit.map(|(proc_root, limit, every)| Watchdog {
            proc_root: proc_root.to_path_buf(),
            pid: self.runtime_pid,
            limit,
            interval: tokio::time::interval_at(Instant::now() + every, every),
        });
        loop {
            match self.next_event(deadline, logs, watchdog.as_mut()).await {
                Event::Frame(DecodedFrame::Frame(payload)) => {
                    let bytes_out = payload.len() as u64;
                    let reply = match serde_json::from_slice::<WorkerFrame>(&payload) {
                        Ok(WorkerFrame::Response { id, ok, result, error }) if id == request_id => {
                            RawReply::Replied { ok, result, error, bytes_out }
                        }
                        Ok(WorkerFrame::Response { id, .. }) => {
                            RawReply::Broken(format!("reply for request {id:?} while {request_id:?} was running"))
                        }
                        Ok(other) => RawReply::Broken(format!("unexpected frame {other:?}")),
                        Err(error) => RawReply::Broken(format!("invalid reply frame: {error}")),
                    };
                    self.drain_ready_output(logs);
                    return reply;
                }
                Event::Frame(DecodedFrame::TooLarge { declared_bytes }) => {
                    self.drain_ready_output(logs);
                    return RawReply::TooLarge { declared_bytes };
                }
                Event::Closed | Event::ProcessExited => {
                    let status = self.wait_briefly().await;
                    self.drain_output_until_eof(logs).await;
                    return RawReply::Exited(status);
                }
                Event::DeadlinePassed => return RawReply::TimedOut,
                Event::RssAbove(rss_bytes) => return RawReply::RssExceeded { rss_bytes },
                Event::Failed(error) => return RawReply::Broken(error),
                Event::Progress => {}
            }
        }
    }

    async fn write_request(
        &mut self,
        frame: &[u8],
        deadline: Instant,
        logs: &mut LogCollector,
    ) -> Result<(), RawReply> {
        let mut written = 0;
        while written < frame.len() {
            // Keep reading output while writing: a worker blocked on a full log pipe would never
            // read a large request otherwise.
            tokio::select! {
                biased;
                result = self.requests.write(&frame[written..]) => match result {
                    Ok(0) | Err(_) => {
                        let status = self.wait_briefly().await;
                        self.drain_output_until_eof(logs).await;
                        return Err(RawReply::Exited(status));
                    }
                    Ok(count) => written += count,
                },
                read = self.stdout.read() => {
                    self.stdout.absorb(read, logs)
                }
                read = self.stderr.read() => {
                    self.stderr.absorb(read, logs)
                }
                _ = tokio::time::sleep_until(deadline) => return Err(RawReply::TimedOut),
            }
        }
        Ok(())
    }

    async fn next_event(
        &mut self,
        deadline: Instant,
        logs: &mut LogCollector,
        watchdog: Option<&mut Watchdog>,
    ) -> Event {
        if let Some(frame) = self.decoder.next_frame() {
            return Event::Frame(frame);
        }
        let watching = watchdog.is_some();
        let mut watchdog = watchdog;
        tokio::select! {
            biased;
            result = self.responses.read(&mut self.response_buffer) => match result {
                Ok(0) => Event::Closed,
                Ok(count) => {
                    self.decoder.push(&self.response_buffer[..count]);
                    self.decoder.next_frame().map_or(Event::Progress, Event::Frame)
                }
                Err(error) => Event::Failed(format!("read reply pipe: {error}")),
            },
            read = self.stdout.read() => {
                    self.stdout.absorb(read, logs);
                Event::Progress
            }
            read = self.stderr.read() => {
                    self.stderr.absorb(read, logs);
                Event::Progress
            }
            _ = self.process.wait() => Event::ProcessExited,
            _ = tokio::time::sleep_until(deadline) => Event::DeadlinePassed,
            _ = async { watchdog.as_mut().expect("guarded").interval.tick().await }, if watching => {
                let dog = watchdog.as_ref().expect("guarded");
                match rss::current_rss_bytes(&dog.proc_root, dog.pid) {
                    Some(rss_bytes) if rss_bytes > dog.limit => Event::RssAbove(rss_bytes),
                    _ => Event::Progress,
                }
            }
        }
    }

    /// Reads whatever output is already in the pipes, without waiting. Adapters flush the
    /// function's output before writing a reply, so this collects all of an invocation's lines.
    pub fn drain_ready_output(&mut self, logs: &mut LogCollector) {
        self.stdout.drain_ready(logs);
        self.stderr.drain_ready(logs);
    }

    /// After the worker died: read its last output, but never wait long for descendants holding the pipes.
    async fn drain_output_until_eof(&mut self, logs: &mut LogCollector) {
        drain_until_eof(&mut self.stdout, &mut self.stderr, logs, Duration::from_millis(100)).await;
    }

    async fn wait_briefly(&mut self) -> Option<ExitStatus> {
        tokio::time::timeout(Duration::from_secs(1), self.process.wait()).await.ok()
    }

    /// True when the worker process has exited (checked when leasing an idle worker).
    pub fn has_exited(&mut self) -> bool {
        self.process.try_reap().is_some()
    }

    /// Kills every process of the worker, reaps it and hands its cgroups back for reuse.
    pub async fn kill_and_reap(self) {
        let Worker { id, mut process, confinement, .. } = self;
        // A frozen worker runs again first: a frozen task does not die until it does (v1).
        confinement.thaw();
        process.kill_group();
        if tokio::time::timeout(Duration::from_secs(5), process.wait()).await.is_err() {
            tracing::error!(worker = id, pid = process.pid(), "worker survived SIGKILL for 5 s");
        }
        // Descendants that left the process group are in the cgroup; its kill loop sleeps between
        // rounds, so it runs on a blocking thread.
        let _ = tokio::task::spawn_blocking(move || confinement.release()).await;
    }

    /// SIGKILLs the worker's process group and cgroup members without waiting (pool teardown).
    pub fn kill_now(self) {
        self.confinement.thaw();
        self.process.kill_group();
        self.confinement.kill_all();
    }

    /// The worker's peak memory so far: its cgroup's peak, else the process's `VmHWM`.
    pub fn peak_memory_bytes(&self, proc_root: &Path) -> Option<u64> {
        self.confinement.peak_memory_bytes().or_else(|| rss::peak_rss_bytes(proc_root, self.runtime_pid))
    }
}

struct Watchdog {
    proc_root: PathBuf,
    pid: i32,
    limit: u64,
    interval: tokio::time::Interval,
}

enum Event {
    Frame(DecodedFrame),
    Closed,
    ProcessExited,
    DeadlinePassed,
    RssAbove(u64),
    Failed(String),
    Progress,
}

/// What a worker that died before `ready` said: the cause on its stderr when a line reads like
/// one (Node prints it mid-way), else its last stderr lines, or its stdout when it wrote nothing
/// on stderr (a program printing its usage).
fn output_tail(logs: &LogCollector) -> Vec<String> {
    let mut stderr = logs.recent_lines(LogStream::Stderr, 40);
    if let Some(cause) = crate::failure_cause::cause(&stderr.iter().map(String::as_str).collect::<Vec<_>>()) {
        return vec![cause];
    }
    stderr.drain(..stderr.len().saturating_sub(5));
    if stderr.is_empty() {
        logs.recent_lines(LogStream::Stdout, 5)
    } else {
        stderr
    }
}
