//! Spawning worker processes without fork, and reaping them without `SIGCHLD` handlers.
//!
//! Every worker starts as `posix_spawn` of the exec wrapper (see `exec_wrapper`), with file actions
//! that place its pipes on fixed descriptors, a new process group, and default signal dispositions.
//! No `pre_exec` hook exists anywhere on this path, so glibc uses `clone(CLONE_VM|CLONE_VFORK)` and
//! the cost does not grow with the server's memory.
//!
//! Spawns run on one dedicated, long-lived thread: the wrapper asks for `PR_SET_PDEATHSIG`, which
//! fires when the *thread* that spawned the process exits. Tokio's blocking threads come and go, so
//! spawning from them would kill workers at random; the spawner thread lives as long as the pool,
//! and if the whole server dies, every worker dies with it.
//!
//! Each child is watched through a pidfd: readable once the process has exited, then reaped with
//! `waitpid(pid, WNOHANG)`.
//!
//! Nothing is left to init. A child dropped before it was reaped (its task was cancelled when the
//! server's runtimes stopped) is killed and disowned; so is a spawn whose requester went away.
//! A worker's descendants outlive it only as orphans, which the kernel hands to the nearest
//! subreaper: the server is one ([`adopt_orphans`]). [`reap_strays`] reaps both kinds: children
//! no [`ChildProcess`] owns, outside the server's own process group (the children that
//! `std::process::Command` starts stay in it, and are left to their owners).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::mpsc as std_mpsc;

use nix::fcntl::OFlag;
use nix::spawn::{posix_spawn, PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::WaitPidFlag;
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::sync::oneshot;

use crate::exec_wrapper::WrapperPlan;

/// What to start and which descriptors it gets.
#[derive(Debug)]
pub struct SpawnCommand {
    pub wrapper: PathBuf,
    pub plan: WrapperPlan,
    /// The complete environment of the worker; nothing of the server's environment is inherited.
    pub env: Vec<(String, String)>,
    /// `(child's end, descriptor number in the child)`; stdin is `/dev/null` unless mapped here.
    pub fds: Vec<(OwnedFd, RawFd)>,
}

/// Errors from starting a process.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("the spawner thread is gone (the pool is shutting down)")]
    SpawnerGone,
    #[error("posix_spawn {program}: {source}")]
    Spawn { program: String, source: nix::Error },
    #[error("pidfd_open for pid {pid}: {source}")]
    Pidfd { pid: i32, source: std::io::Error },
    #[error("{what} contains a NUL byte")]
    NulByte { what: String },
    #[error("create pipe: {0}")]
    Pipe(nix::Error),
}

struct SpawnJob {
    command: SpawnCommand,
    reply: oneshot::Sender<Result<(Pid, OwnedFd), SpawnError>>,
}

/// Handle to the dedicated spawner thread; dropping the last handle stops the thread.
#[derive(Debug, Clone)]
pub struct Spawner {
    jobs: std_mpsc::Sender<SpawnJob>,
    thread_id: u64,
}

impl std::fmt::Debug for SpawnJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnJob").field("command", &self.command).finish()
    }
}

impl Spawner {
    /// Starts the spawner thread; `setup` runs on it first (the sandbox gives the thread its own
    /// mount namespace there, which every worker it spawns inherits).
    pub fn start(setup: Option<crate::sandbox::SpawnerSetup>) -> std::io::Result<Self> {
        let (jobs, receiver) = std_mpsc::channel::<SpawnJob>();
        let (tid_tx, tid_rx) = std_mpsc::channel();
        std::thread::Builder::new().name("prewarm-spawner".into()).spawn(move || {
            let prepared = setup.map_or(Ok(()), |setup| setup());
            let failed = prepared.is_err();
            let _ = tid_tx.send(prepared.map(|()| nix::unistd::gettid().as_raw() as u64));
            if failed {
                return;
            }
            while let Ok(job) = receiver.recv() {
                // The requester went away (its task was cancelled): nobody will own the child.
                if let Err(Ok((pid, _pidfd))) = job.reply.send(spawn_now(job.command)) {
                    disown(pid);
                }
            }
        })?;
        let thread_id = tid_rx
            .recv()
            .map_err(|_| std::io::Error::other("spawner thread did not start"))?
            .map_err(std::io::Error::other)?;
        Ok(Self { jobs, thread_id })
    }

    /// Spawns on the spawner thread and returns the running child.
    pub async fn spawn(&self, command: SpawnCommand) -> Result<ChildProcess, SpawnError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(SpawnJob { command, reply }).map_err(|_| SpawnError::SpawnerGone)?;
        let (pid, pidfd) = answer.await.map_err(|_| SpawnError::SpawnerGone)??;
        // SAFETY: the OwnedFd moves into the AsyncFd, which keeps it open and unchanged until dropped.
        let registered = unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
        let pidfd = registered.map_err(|error| {
            disown(pid);
            SpawnError::Pidfd { pid: pid.as_raw(), source: error.into_parts().1 }
        })?;
        Ok(ChildProcess { pid, pidfd, exit: None })
    }

    /// The kernel thread id of the spawner: the "parent" that `PR_SET_PDEATHSIG` watches.
    pub fn thread_id(&self) -> u64 {
        self.thread_id
    }
}

fn spawn_now(command: SpawnCommand) -> Result<(Pid, OwnedFd), SpawnError> {
    let nul = |what: &str| SpawnError::NulByte { what: what.to_string() };
    let wrapper = CString::new(command.wrapper.as_os_str().as_bytes()).map_err(|_| nul("wrapper path"))?;
    let mut argv = vec![wrapper.clone()];
    for arg in command.plan.to_args() {
        argv.push(CString::new(arg.as_bytes()).map_err(|_| nul("argument"))?);
    }
    let mut envp = Vec::with_capacity(command.env.len());
    for (key, value) in &command.env {
        envp.push(CString::new(format!("{key}={value}")).map_err(|_| nul(&format!("environment variable {key}")))?);
    }

    let spawn_error = |source| SpawnError::Spawn { program: command.wrapper.display().to_string(), source };
    let mut actions = PosixSpawnFileActions::init().map_err(spawn_error)?;
    if !command.fds.iter().any(|(_, target)| *target == 0) {
        actions.add_open(0, "/dev/null", OFlag::O_RDONLY, Mode::empty()).map_err(spawn_error)?;
    }
    // Keep the sources of the dup2 actions above every target, so no action overwrites a later source.
    let highest_target = command.fds.iter().map(|(_, target)| *target).max().unwrap_or(2);
    let mut sources = Vec::with_capacity(command.fds.len());
    for (fd, target) in &command.fds {
        let source = if fd.as_raw_fd() <= highest_target {
            let raised = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(highest_target + 1))
                .map_err(spawn_error)?;
            // SAFETY: F_DUPFD_CLOEXEC returned a fresh descriptor that nothing else owns.
            Some(unsafe { OwnedFd::from_raw_fd(raised) })
        } else {
            None
        };
        let raw = source.as_ref().map_or(fd.as_raw_fd(), |raised| raised.as_raw_fd());
        actions.add_dup2(raw, *target).map_err(spawn_error)?;
        sources.push(source);
    }

    let mut attr = PosixSpawnAttr::init().map_err(spawn_error)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )
    .map_err(spawn_error)?;
    attr.set_pgroup(Pid::from_raw(0)).map_err(spawn_error)?;
    attr.set_sigmask(&SigSet::empty()).map_err(spawn_error)?;
    let mut defaults = SigSet::empty();
    for signal in [
        Signal::SIGPIPE,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
        Signal::SIGALRM,
        Signal::SIGXFSZ,
    ] {
        defaults.add(signal);
    }
    attr.set_sigdefault(&defaults).map_err(spawn_error)?;

    let mut registry = owned();
    let pid = posix_spawn(wrapper.as_c_str(), &actions, &attr, &argv, &envp).map_err(spawn_error)?;
    registry.insert(pid.as_raw());
    drop(registry);
    drop(sources);
    drop(command.fds);
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; no memory is passed.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if raw < 0 {
        let source = std::io::Error::last_os_error();
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
        owned().remove(&pid.as_raw());
        return Err(SpawnError::Pidfd { pid: pid.as_raw(), source });
    }
    // SAFETY: the syscall returned a fresh descriptor that we now own.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(raw as RawFd) }))
}

/// How a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Exited(i32),
    Signaled(i32),
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exited with status {code}"),
            ExitStatus::Signaled(signal) => {
                let name = Signal::try_from(*signal).map(|s| s.as_str()).unwrap_or("unknown signal");
                write!(f, "killed by {name}")
            }
        }
    }
}

/// A spawned process, the leader of its own process group.
#[derive(Debug)]
pub struct ChildProcess {
    pid: Pid,
    pidfd: AsyncFd<OwnedFd>,
    exit: Option<ExitStatus>,
}

impl ChildProcess {
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// Waits until the process exits and reaps it. Cancel-safe, and free while the process runs:
    /// no system call is made until the pidfd reports the exit.
    pub async fn wait(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.exit {
                return status;
            }
            match self.pidfd.readable().await {
                Ok(mut guard) => match reap(self.pid, Some(WaitPidFlag::WNOHANG)) {
                    Some(status) => {
                        self.reaped(status);
                        return status;
                    }
                    None => guard.clear_ready(),
                },
                // A pidfd registered with the reactor cannot fail to poll; reap by blocking if it does.
                Err(_) => return self.reap_blocking(),
            }
        }
    }

    /// Reaps the process if it has exited, without waiting. Costs no system call while the
    /// pidfd has not reported an exit.
    pub fn try_reap(&mut self) -> Option<ExitStatus> {
        if self.exit.is_some() {
            return self.exit;
        }
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        if let std::task::Poll::Ready(Ok(_guard)) = self.pidfd.poll_read_ready(&mut context) {
            if let Some(status) = reap(self.pid, Some(WaitPidFlag::WNOHANG)) {
                self.reaped(status);
            }
        }
        self.exit
    }

    fn reap_blocking(&mut self) -> ExitStatus {
        let status = reap(self.pid, None).unwrap_or(ExitStatus::Signaled(Signal::SIGKILL as i32));
        self.reaped(status);
        status
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.exit = Some(status);
        owned().remove(&self.pid.as_raw());
    }

    /// SIGKILLs the whole process group (the worker and every descendant that did not leave it).
    ///
    /// Call it before reaping: while any member lives the kernel keeps the group id reserved, so the
    /// signal cannot reach an unrelated process that reused the leader's pid.
    pub fn kill_group(&self) {
        let _ = nix::sys::signal::killpg(self.pid, Signal::SIGKILL);
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.exit.is_some() {
            return;
        }
        // Still ours (not reaped), so the group id cannot belong to anyone else yet.
        self.kill_group();
        // Reaped now, or (still exiting) by `reap_strays` later.
        let _ = reap(self.pid, Some(WaitPidFlag::WNOHANG));
        owned().remove(&self.pid.as_raw());
    }
}

/// Children that a [`ChildProcess`] owns, or will: the spawner thread adds a pid under this lock
/// together with the spawn, so [`reap_strays`] never takes a child whose owner is on its way.
static OWNED: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

fn owned() -> std::sync::MutexGuard<'static, std::collections::BTreeSet<i32>> {
    OWNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Kills a child nobody will own and leaves it to [`reap_strays`].
fn disown(pid: Pid) {
    let _ = nix::sys::signal::killpg(pid, Signal::SIGKILL);
    owned().remove(&pid.as_raw());
}

/// Makes this process the subreaper of its descendants: a worker's process that outlives the
/// worker comes back to the server (and [`reap_strays`]) instead of init, also when the server
/// is itself PID 1 of a container, where init would be the server and nobody would reap it.
pub fn adopt_orphans() -> nix::Result<()> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Reaps the children that are nobody's (see the module's documentation) and have exited.
/// Returns how many such children are still running. Non-blocking.
pub fn reap_strays() -> usize {
    let ours = nix::unistd::getpgrp().as_raw();
    let owned = owned();
    let mut running = 0;
    for pid in own_children() {
        if owned.contains(&pid) || process_group(pid).is_none_or(|group| group == ours) {
            continue;
        }
        if reap(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)).is_none() {
            running += 1;
        }
    }
    running
}

/// [`reap_strays`] until none is left or `within` has passed (they were sent SIGKILL). Blocking.
/// Returns how many are still not reaped.
pub fn reap_orphans(within: std::time::Duration) -> usize {
    let give_up = std::time::Instant::now() + within;
    loop {
        let running = reap_strays();
        if running == 0 || std::time::Instant::now() >= give_up {
            return running;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// The children of every thread of this process (`/proc/self/task/*/children`).
fn own_children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Vec::new() };
    let mut children = Vec::new();
    for task in tasks.flatten() {
        let listed = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        children.extend(listed.split_ascii_whitespace().filter_map(|pid| pid.parse::<i32>().ok()));
    }
    children
}

/// A process's group, from `/proc/PID/stat` (zombies keep theirs).
fn process_group(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold anything: the fields after it are fixed.
    stat.rsplit_once(") ")?.1.split(' ').nth(2)?.parse().ok()
}

/// `waitpid`: the status if the process has exited, `None` while it runs (with `WNOHANG`).
fn reap(pid: Pid, flags: Option<WaitPidFlag>) -> Option<ExitStatus> {
    use nix::sys::wait::{waitpid, WaitStatus};
    match waitpid(pid, flags) {
        Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus::Exited(code)),
        Ok(WaitStatus::Signaled(_, signal, _)) => Some(ExitStatus::Signaled(signal as i32)),
        Ok(_) => None,
        // ECHILD: already reaped, which cannot happen while we own the pid; report it as gone.
        Err(_) => Some(ExitStatus::Signaled(Signal::SIGKILL as i32)),
    }
}

/// A pipe whose both ends are close-on-exec; the spawn file actions clear it on the child's copy.
pub fn create_pipe() -> Result<(OwnedFd, OwnedFd), SpawnError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(SpawnError::Pipe)
}
