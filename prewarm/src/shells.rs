//! Shells: exec-wrapper processes spawned ahead of time, already in their cgroups, waiting for a
//! launch plan. A cold start takes a shell and sends it the plan instead of spawning.
//!
//! Joining a cgroup is the expensive part of starting a worker on a quiet host (an RCU grace
//! period, 5–12 ms measured here; see `exec_wrapper`), and `posix_spawn` plus the wrapper's own
//! start cost another millisecond. A shell has done all of that before anyone waits for it: a cold
//! start writes the function's limits into the shell's cgroup and sends the plan, and the shell
//! sets its rlimits, changes directory and execs the runtime.
//!
//! Shells are generic (any function, any limits) and the pool keeps a few ready, refilling in the
//! background. A shell's pipes are the worker's pipes: created when the shell is spawned.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

use crate::exec_wrapper::WrapperPlan;
use crate::limits::{LimitsError, SpareGroups, WorkerConfinement, WorkerLimits};
use crate::protocol::{REQUEST_FD, RESPONSE_FD};
use crate::sandbox::enter::SandboxSteps;
use crate::spawn::{create_pipe, ChildProcess, SpawnCommand, SpawnError, Spawner};

/// Why a shell could not be had or launched.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("{0}")]
    Limits(#[from] LimitsError),
    #[error("{0}")]
    Spawn(#[from] SpawnError),
    #[error("send the launch plan to the worker: {0}")]
    SendPlan(std::io::Error),
}

/// The parent's ends of a worker's pipes.
#[derive(Debug)]
pub struct WorkerPipes {
    pub requests: OwnedFd,
    pub responses: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// A spawned, confined wrapper waiting for its plan.
#[derive(Debug)]
pub struct Shell {
    process: ChildProcess,
    confinement: WorkerConfinement,
    control: OwnedFd,
    pipes: WorkerPipes,
}

/// What to run in a shell.
#[derive(Debug, Clone)]
pub struct Launch<'a> {
    pub program: &'a std::path::Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub directory: &'a std::path::Path,
    pub limits: WorkerLimits,
    /// Set when the sandbox is on; a sandboxed shell refuses to launch without it.
    pub sandbox: Option<&'a SandboxSteps>,
}

/// A launched worker process with its confinement and pipes.
#[derive(Debug)]
pub struct Launched {
    pub process: ChildProcess,
    /// The runtime's pid in the host's pid namespace: the sandboxed child of the wrapper's
    /// monitor, or the spawned process itself without the sandbox (for RSS readings).
    pub runtime_pid: i32,
    pub confinement: WorkerConfinement,
    pub pipes: WorkerPipes,
}

impl Shell {
    /// Applies the limits and sends the plan; the shell execs the runtime right away.
    pub async fn launch(mut self, launch: Launch<'_>) -> Result<Launched, ShellError> {
        if let Err(error) = self.confinement.reconfigure(launch.limits) {
            self.discard().await;
            return Err(error.into());
        }
        let plan = WrapperPlan {
            rlimits: self.confinement.rlimits(launch.limits),
            working_dir: Some(launch.directory.to_path_buf()),
            env: Some(launch.env.iter().map(|(key, value)| format!("{key}={value}").into()).collect()),
            program: launch.program.to_path_buf(),
            args: launch.args.iter().map(Into::into).collect(),
            sandbox: launch.sandbox.cloned(),
            ..Default::default()
        };
        let runtime_pid = if launch.sandbox.is_some() {
            crate::limits::rss::first_child(self.process.pid()).unwrap_or(self.process.pid())
        } else {
            self.process.pid()
        };
        let sent = async {
            let mut control = tokio::net::unix::pipe::Sender::from_owned_fd(self.control)?;
            control.write_all(&plan.to_stdin_bytes()).await?;
            control.shutdown().await
        }
        .await;
        let launched =
            Launched { process: self.process, runtime_pid, confinement: self.confinement, pipes: self.pipes };
        match sent {
            Ok(()) => Ok(launched),
            Err(error) => {
                discard(launched.process, launched.confinement).await;
                Err(ShellError::SendPlan(error))
            }
        }
    }

    async fn discard(self) {
        drop(self.control);
        discard(self.process, self.confinement).await;
    }
}

async fn discard(mut process: ChildProcess, confinement: WorkerConfinement) {
    process.kill_group();
    process.wait().await;
    let _ = tokio::task::spawn_blocking(move || confinement.release()).await;
}

/// Counts workers still being killed and released in the background, so shutdown can wait for
/// their cgroups to come back before removing the parent groups.
#[derive(Debug, Clone, Default)]
pub struct PendingCleanups(Arc<std::sync::atomic::AtomicUsize>);

/// Held by one background cleanup; dropping it marks the cleanup done.
#[derive(Debug)]
pub struct CleanupGuard(Arc<std::sync::atomic::AtomicUsize>);

impl PendingCleanups {
    pub fn guard(&self) -> CleanupGuard {
        self.0.fetch_add(1, Ordering::AcqRel);
        CleanupGuard(self.0.clone())
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

impl Drop for CleanupGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The ready shells of one pool.
#[derive(Debug)]
pub struct ShellPool {
    pub cleanups: PendingCleanups,
    spawner: Spawner,
    groups: Arc<SpareGroups>,
    exec_wrapper: PathBuf,
    /// Shells create the worker's namespaces ahead of time (the sandbox is on).
    sandboxed: bool,
    ready: Mutex<Vec<Shell>>,
    target: usize,
    refilling: AtomicBool,
    closed: AtomicBool,
}

/// Limits a shell runs under until it is launched: the wrapper needs a few MB and one process.
const SHELL_LIMITS: WorkerLimits = WorkerLimits { memory_bytes: 64 << 20, max_pids: 8, max_open_files: 64 };

impl ShellPool {
    pub fn new(
        spawner: Spawner,
        groups: Arc<SpareGroups>,
        exec_wrapper: PathBuf,
        target: usize,
        sandboxed: bool,
    ) -> Arc<Self> {
        Arc::new(Self {
            cleanups: PendingCleanups::default(),
            spawner,
            groups,
            exec_wrapper,
            sandboxed,
            ready: Mutex::new(Vec::new()),
            target,
            refilling: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        })
    }

    pub fn groups(&self) -> &Arc<SpareGroups> {
        &self.groups
    }

    pub fn spawner(&self) -> &Spawner {
        &self.spawner
    }

    /// Shells ready right now.
    pub fn ready_count(&self) -> usize {
        self.ready.lock().expect("shells lock poisoned").len()
    }

    /// A ready shell, or a new one if none is ready; then refills in the background.
    pub async fn take(self: &Arc<Self>) -> Result<Shell, ShellError> {
        let mut dead = Vec::new();
        let ready = loop {
            let popped = self.ready.lock().expect("shells lock poisoned").pop();
            match popped {
                // A shell killed while it waited (by hand, or by the OOM killer) is replaced.
                Some(mut shell) => {
                    if shell.process.try_reap().is_none() {
                        break Some(shell);
                    }
                    dead.push(shell);
                }
                None => break None,
            }
        };
        for shell in dead {
            shell.discard().await;
        }
        self.refill();
        match ready {
            Some(shell) => Ok(shell),
            None => self.spawn_shell().await,
        }
    }

    /// Starts shells in the background until `target` are ready.
    pub fn refill(self: &Arc<Self>) {
        if self.closed.load(Ordering::Acquire) || self.refilling.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = self.clone();
        tokio::spawn(async move {
            while !pool.closed.load(Ordering::Acquire) && pool.ready_count() < pool.target {
                match pool.spawn_shell().await {
                    // A shell finished after `close` is not kept: nothing would ever end it.
                    Ok(shell) if pool.closed.load(Ordering::Acquire) => shell.discard().await,
                    Ok(shell) => pool.ready.lock().expect("shells lock poisoned").push(shell),
                    Err(error) => {
                        tracing::warn!(%error, "could not start a spare worker shell");
                        break;
                    }
                }
            }
            pool.refilling.store(false, Ordering::Release);
        });
    }

    async fn spawn_shell(&self) -> Result<Shell, ShellError> {
        let groups = self.groups.clone();
        let confinement = tokio::task::spawn_blocking(move || groups.confine(SHELL_LIMITS))
            .await
            .map_err(|_| SpawnError::SpawnerGone)??;
        let (control_read, control) = create_pipe()?;
        let (request_read, requests) = create_pipe()?;
        let (responses, response_write) = create_pipe()?;
        let (stdout, stdout_write) = create_pipe()?;
        let (stderr, stderr_write) = create_pipe()?;
        let plan = WrapperPlan {
            cgroup_procs_files: confinement.procs_files(),
            expected_parent: Some(std::process::id() as i32),
            await_plan: true,
            sandbox_shell: self.sandboxed,
            ..Default::default()
        };
        let command = SpawnCommand {
            wrapper: self.exec_wrapper.clone(),
            plan,
            env: Vec::new(),
            fds: vec![
                (control_read, 0),
                (stdout_write, 1),
                (stderr_write, 2),
                (request_read, REQUEST_FD),
                (response_write, RESPONSE_FD),
            ],
        };
        let process = match self.spawner.spawn(command).await {
            Ok(process) => process,
            Err(error) => {
                let _ = tokio::task::spawn_blocking(move || confinement.release()).await;
                return Err(error.into());
            }
        };
        Ok(Shell { process, confinement, control, pipes: WorkerPipes { requests, responses, stdout, stderr } })
    }

    /// Stops refilling and SIGKILLs every ready shell without waiting (pool teardown).
    pub fn kill_ready_now(&self) {
        self.closed.store(true, Ordering::Release);
        let shells = std::mem::take(&mut *self.ready.lock().expect("shells lock poisoned"));
        for shell in shells {
            shell.process.kill_group();
            shell.confinement.kill_all();
        }
    }

    /// Stops refilling and ends every ready shell.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let shells = std::mem::take(&mut *self.ready.lock().expect("shells lock poisoned"));
        for shell in shells {
            shell.discard().await;
        }
    }
}
