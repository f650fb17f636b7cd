//! Resource limits for workers: which mechanism is in force, and the per-worker handle that applies it.
//!
//! Preference order (brief, decision 5): cgroup v2 `memory.max` + `pids.max` where the controllers are
//! delegated; cgroup v1 `memory` + `pids` hierarchies where writable; else rlimits plus an RSS
//! watchdog. The cgroup root and `/proc` are parameters so tests can point them at a temp dir.

mod cgroup_v1;
mod cgroup_v2;
mod detect;
pub mod rss;

use std::path::{Path, PathBuf};

pub use detect::{detect_enforcement, remove_parent_groups, remove_stale_groups, Detected};

use crate::exec_wrapper::RlimitName;

/// How memory and process-count limits are enforced on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// cgroup v2: `group_dir` is our delegated parent group with `memory` and `pids` enabled for children.
    CgroupV2 { group_dir: PathBuf },
    /// cgroup v1: our parent group in the `memory` and in the `pids` hierarchy, and in the
    /// `freezer` one where the host has it (idle workers are frozen).
    CgroupV1 { memory_group_dir: PathBuf, pids_group_dir: PathBuf, freezer_group_dir: Option<PathBuf> },
    /// No writable cgroup: `RLIMIT_DATA` per process and an RSS watchdog; no pids cap for root.
    Rlimit,
}

impl Enforcement {
    /// A short name for logs, `/healthz` and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Enforcement::CgroupV2 { .. } => "cgroup-v2",
            Enforcement::CgroupV1 { .. } => "cgroup-v1",
            Enforcement::Rlimit => "rlimit",
        }
    }

    /// Whether idle workers can be frozen: every cgroup v2 group can, v1 needs its `freezer`.
    pub fn has_freezer(&self) -> bool {
        match self {
            Enforcement::CgroupV2 { .. } => true,
            Enforcement::CgroupV1 { freezer_group_dir, .. } => freezer_group_dir.is_some(),
            Enforcement::Rlimit => false,
        }
    }

    /// Whether a fork bomb is contained by a kernel-enforced pids cap.
    pub fn caps_pids(&self) -> bool {
        !matches!(self, Enforcement::Rlimit)
    }
}

/// Where the limit mechanisms live; parameters so tests can use temp dirs.
#[derive(Debug, Clone)]
pub struct LimitsHost {
    /// Usually `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// Usually `/proc`.
    pub proc_root: PathBuf,
    /// Name of our parent group under each hierarchy, for example `containerpub`.
    pub group_name: String,
    /// Forces a mechanism (`cgroup-v2`, `cgroup-v1`, `rlimit`) instead of detecting the best one.
    pub forced: Option<String>,
}

impl Default for LimitsHost {
    fn default() -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            group_name: unique_group_name(),
            forced: None,
        }
    }
}

/// `containerpub-PID-N`: unique per pool instance, so several pools in one process (tests) and
/// several servers on one host never share a parent group.
fn unique_group_name() -> String {
    static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let instance = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("containerpub-{}-{instance}", std::process::id())
}

/// The limits of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerLimits {
    pub memory_bytes: u64,
    pub max_pids: u64,
    pub max_open_files: u64,
}

/// Errors while setting up a worker's limits.
#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("create cgroup {path}: {source}")]
    CreateCgroup { path: PathBuf, source: std::io::Error },
    #[error("write {value} to {path}: {source}")]
    WriteControl { path: PathBuf, value: String, source: std::io::Error },
}

pub(crate) fn write_control(path: &Path, value: &str) -> Result<(), LimitsError> {
    std::fs::write(path, value).map_err(|source| LimitsError::WriteControl {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub(crate) fn create_dir(path: &Path) -> Result<(), LimitsError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(LimitsError::CreateCgroup { path: path.to_path_buf(), source }),
    }
}

/// The limits applied to one worker process tree.
#[derive(Debug)]
pub struct WorkerConfinement {
    group: Option<WorkerGroup>,
    memory_bytes: u64,
    /// Groups are reused, and the kernel's OOM-kill counters are cumulative: compare against this.
    oom_kills_before: u64,
    /// Kept open so reading the peak on every invocation is one `pread`, not open/read/close.
    peak_file: Option<std::fs::File>,
    /// Where the group goes back when the worker is gone.
    spares: Option<std::sync::Arc<SpareGroups>>,
    /// Freezes the worker while it is idle, where the host can (see [`Freezer`]).
    freezer: Option<Freezer>,
}

/// A worker's freezer: once the worker has been idle for `PrewarmConfig::idle_freeze_after`,
/// every thread of it is stopped by the kernel (cgroup v2 `cgroup.freeze`, v1 `freezer.state`), as
/// Lambda freezes its sandboxes, so a thread a handler left running (a Python thread, a Node
/// worker thread, a timer) costs no CPU while the worker is idle and takes none from other
/// tenants. It runs again when a lease takes the worker (see `FunctionPool::reap_idle`).
#[derive(Debug)]
pub struct Freezer {
    file: std::fs::File,
    freeze: &'static [u8],
    thaw: &'static [u8],
    /// What was last written: a thaw of a worker that is not frozen writes nothing.
    frozen: std::sync::atomic::AtomicBool,
}

impl Freezer {
    fn open(path: &Path, freeze: &'static [u8], thaw: &'static [u8]) -> Option<Freezer> {
        let file = std::fs::OpenOptions::new().write(true).open(path).ok()?;
        Some(Freezer { file, freeze, thaw, frozen: std::sync::atomic::AtomicBool::new(false) })
    }

    /// Writes the state when it changes; true when the worker is (now) in `frozen`.
    fn set(&self, frozen: bool) -> bool {
        use std::os::unix::fs::FileExt;
        use std::sync::atomic::Ordering;
        if self.frozen.load(Ordering::Acquire) == frozen {
            return true;
        }
        let value = if frozen { self.freeze } else { self.thaw };
        let written = self.file.write_at(value, 0).is_ok();
        if written {
            self.frozen.store(frozen, Ordering::Release);
        }
        written
    }
}

/// One worker's cgroup(s), in whichever hierarchy is in force.
#[derive(Debug)]
pub enum WorkerGroup {
    V2(cgroup_v2::WorkerGroup),
    V1(cgroup_v1::WorkerGroup),
}

impl WorkerGroup {
    fn create(enforcement: &Enforcement, name: &str) -> Result<Option<Self>, LimitsError> {
        Ok(match enforcement {
            Enforcement::CgroupV2 { group_dir } => {
                Some(WorkerGroup::V2(cgroup_v2::WorkerGroup::create(group_dir, name)?))
            }
            Enforcement::CgroupV1 { memory_group_dir, pids_group_dir, freezer_group_dir } => Some(WorkerGroup::V1(
                cgroup_v1::WorkerGroup::create(memory_group_dir, pids_group_dir, freezer_group_dir.as_deref(), name)?,
            )),
            Enforcement::Rlimit => None,
        })
    }

    fn apply(&self, limits: WorkerLimits) -> Result<(), LimitsError> {
        match self {
            WorkerGroup::V2(group) => group.apply(limits),
            WorkerGroup::V1(group) => group.apply(limits),
        }
    }

    fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            WorkerGroup::V2(group) => vec![group.procs_file()],
            WorkerGroup::V1(group) => group.procs_files(),
        }
    }

    fn oom_kills(&self) -> u64 {
        match self {
            WorkerGroup::V2(group) => group.oom_kills(),
            WorkerGroup::V1(group) => group.oom_kills(),
        }
    }

    fn open_peak_file(&self) -> Option<std::fs::File> {
        match self {
            WorkerGroup::V2(group) => group.open_peak_file(),
            WorkerGroup::V1(group) => group.open_peak_file(),
        }
    }

    fn kill_all(&self) {
        match self {
            WorkerGroup::V2(group) => group.kill_all(),
            WorkerGroup::V1(group) => group.kill_all(),
        }
    }

    /// The control file that freezes and thaws the group, opened once, with what to write.
    fn open_freezer(&self) -> Option<Freezer> {
        match self {
            WorkerGroup::V2(group) => group.open_freezer(),
            WorkerGroup::V1(group) => group.open_freezer(),
        }
    }

    fn is_empty(&self) -> bool {
        self.procs_files().iter().all(|file| read_pids(file).is_empty())
    }

    fn remove(&self) {
        match self {
            WorkerGroup::V2(group) => group.remove(),
            WorkerGroup::V1(group) => group.remove(),
        }
    }
}

impl WorkerConfinement {
    /// The `cgroup.procs` files the exec wrapper writes its pid to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.group.as_ref().map(WorkerGroup::procs_files).unwrap_or_default()
    }

    /// Writes a worker's limits into this confinement (a shell is confined before it knows which
    /// function it will run). The OOM-kill count restarts here.
    pub fn reconfigure(&mut self, limits: WorkerLimits) -> Result<(), LimitsError> {
        if let Some(group) = &self.group {
            group.apply(limits)?;
            self.oom_kills_before = group.oom_kills();
        }
        self.memory_bytes = limits.memory_bytes;
        Ok(())
    }

    /// The rlimits the exec wrapper sets. Core dumps are always off; with no cgroup, `RLIMIT_DATA`
    /// caps the heap (not `RLIMIT_AS`: the Dart VM and V8 reserve large virtual ranges up front).
    pub fn rlimits(&self, limits: WorkerLimits) -> Vec<(RlimitName, u64)> {
        let mut rlimits = vec![(RlimitName::CoreSize, 0), (RlimitName::OpenFiles, limits.max_open_files)];
        if self.group.is_none() {
            rlimits.push((RlimitName::Data, self.memory_bytes));
        }
        rlimits
    }

    /// True when the kernel killed a process of this worker for exceeding its memory cap.
    pub fn memory_limit_hit(&self) -> bool {
        self.group.as_ref().is_some_and(|group| group.oom_kills() > self.oom_kills_before)
    }

    /// Peak memory of the whole worker tree since it started, where a cgroup tracks it.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        read_number_at_start(self.peak_file.as_ref()?)
    }

    /// SIGKILLs every process in the worker's cgroups (those that left the process group included).
    /// A frozen worker is thawed first: a frozen task does not die until it runs again (v1).
    pub fn kill_all(&self) {
        self.thaw();
        if let Some(group) = &self.group {
            group.kill_all();
        }
    }

    /// Stops every thread of the worker until [`Self::thaw`] (one write, none when it is frozen
    /// already); false where the host has no freezer, or it refused.
    pub fn freeze(&self) -> bool {
        self.freezer.as_ref().is_some_and(|freezer| freezer.set(true))
    }

    /// Lets the worker run again (one write; nothing to write when it is not frozen).
    pub fn thaw(&self) -> bool {
        self.freezer.as_ref().is_some_and(|freezer| freezer.set(false))
    }

    /// Kills what is left and hands the group back for reuse (or removes it). Blocking: call it
    /// from a blocking thread once the worker's main process was reaped.
    pub fn release(mut self) {
        self.thaw();
        let Some(group) = self.group.take() else { return };
        group.kill_all();
        match &self.spares {
            Some(spares) if group.is_empty() => spares.put_back(group),
            _ => group.remove(),
        }
    }
}

/// Reads a decimal number from the start of an open control file (one `pread`).
fn read_number_at_start(file: &std::fs::File) -> Option<u64> {
    use std::os::unix::fs::FileExt;
    let mut buffer = [0u8; 32];
    let length = file.read_at(&mut buffer, 0).ok()?;
    std::str::from_utf8(&buffer[..length]).ok()?.trim().parse().ok()
}

/// The groups of dead workers, kept for reuse: creating and removing a memory cgroup costs about
/// 0.3 ms plus the kernel's work to release it; reusing one costs a few writes.
#[derive(Debug)]
pub struct SpareGroups {
    enforcement: Enforcement,
    /// Freeze idle workers where the host has a freezer (`PrewarmConfig::freeze_idle_workers`).
    freeze_idle: bool,
    spares: std::sync::Mutex<Vec<WorkerGroup>>,
    max_kept: usize,
    next_name: std::sync::atomic::AtomicU64,
}

impl SpareGroups {
    /// At most `max_kept` empty groups are kept. Idle workers are frozen where the host has a
    /// freezer.
    pub fn new(enforcement: Enforcement, max_kept: usize) -> std::sync::Arc<Self> {
        Self::with_freezing(enforcement, max_kept, true)
    }

    /// [`Self::new`], saying whether idle workers are frozen.
    pub fn with_freezing(enforcement: Enforcement, max_kept: usize, freeze_idle: bool) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            enforcement,
            freeze_idle,
            spares: std::sync::Mutex::new(Vec::new()),
            max_kept,
            next_name: std::sync::atomic::AtomicU64::new(1),
        })
    }

    pub fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    fn new_group(&self) -> Result<Option<WorkerGroup>, LimitsError> {
        let name = format!("w{}", self.next_name.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        WorkerGroup::create(&self.enforcement, &name)
    }

    /// Confinement for one new worker: a spare group if there is one, else a fresh group.
    pub fn confine(self: &std::sync::Arc<Self>, limits: WorkerLimits) -> Result<WorkerConfinement, LimitsError> {
        let spare = self.spares.lock().expect("spares lock poisoned").pop();
        let group = match spare {
            Some(group) => Some(group),
            None => self.new_group()?,
        };
        let mut confinement = WorkerConfinement {
            oom_kills_before: 0,
            peak_file: group.as_ref().and_then(WorkerGroup::open_peak_file),
            freezer: group.as_ref().filter(|_| self.freeze_idle).and_then(WorkerGroup::open_freezer),
            group,
            memory_bytes: limits.memory_bytes,
            spares: Some(self.clone()),
        };
        // A spare group may come back frozen from a worker that died frozen: written once, whatever
        // this handle believes.
        if let Some(freezer) = &confinement.freezer {
            use std::os::unix::fs::FileExt;
            let _ = freezer.file.write_at(freezer.thaw, 0);
        }
        confinement.reconfigure(limits)?;
        Ok(confinement)
    }

    fn put_back(&self, group: WorkerGroup) {
        let mut spares = self.spares.lock().expect("spares lock poisoned");
        if spares.len() < self.max_kept {
            spares.push(group);
        } else {
            drop(spares);
            group.remove();
        }
    }

    /// Removes every spare group (shutdown).
    pub fn remove_all(&self) {
        let spares = std::mem::take(&mut *self.spares.lock().expect("spares lock poisoned"));
        for group in spares {
            group.remove();
        }
    }
}

/// Reads the pids listed in a `cgroup.procs` file; a missing file lists none.
pub(crate) fn read_pids(procs_file: &Path) -> Vec<i32> {
    std::fs::read_to_string(procs_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.trim().parse().ok())
        .collect()
}

/// SIGKILLs the processes of a cgroup until it is empty. A fork bomb can add processes while we
/// iterate, but `pids.max` bounds how many, so a few rounds empty the group.
pub(crate) fn kill_until_empty(procs_file: &Path) {
    for _round in 0..200 {
        let pids = read_pids(procs_file);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    tracing::warn!(file = %procs_file.display(), "cgroup still has processes after 200 kill rounds");
}

/// Removes a cgroup directory, retrying briefly while killed processes finish exiting.
pub(crate) fn remove_group_dir(dir: &Path) {
    for _attempt in 0..100 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
        }
    }
    tracing::warn!(dir = %dir.display(), "could not remove worker cgroup");
}

/// Reads the value of a `key value` line (for example `oom_kill 1` in `memory.events`).
pub(crate) fn read_keyed_counter(file: &Path, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}
