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

pub use detect::{detect_enforcement, remove_parent_groups, Detected};

use crate::exec_wrapper::RlimitName;

/// How memory and process-count limits are enforced on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// cgroup v2: `group_dir` is our delegated parent group with `memory` and `pids` enabled for children.
    CgroupV2 { group_dir: PathBuf },
    /// cgroup v1: our parent group in the `memory` and in the `pids` hierarchy.
    CgroupV1 {
        memory_group_dir: PathBuf,
        pids_group_dir: PathBuf,
    },
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
    CreateCgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {value} to {path}: {source}")]
    WriteControl {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
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
        Err(source) => Err(LimitsError::CreateCgroup {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The limits applied to one worker process tree.
#[derive(Debug)]
pub enum WorkerConfinement {
    CgroupV2(cgroup_v2::WorkerGroup),
    CgroupV1(cgroup_v1::WorkerGroup),
    Rlimit { memory_bytes: u64 },
}

impl WorkerConfinement {
    /// Creates the worker's cgroups (if any) with the limits written, before the worker is spawned.
    pub fn create(
        enforcement: &Enforcement,
        worker_name: &str,
        limits: WorkerLimits,
    ) -> Result<Self, LimitsError> {
        Ok(match enforcement {
            Enforcement::CgroupV2 { group_dir } => WorkerConfinement::CgroupV2(
                cgroup_v2::WorkerGroup::create(group_dir, worker_name, limits)?,
            ),
            Enforcement::CgroupV1 {
                memory_group_dir,
                pids_group_dir,
            } => WorkerConfinement::CgroupV1(cgroup_v1::WorkerGroup::create(
                memory_group_dir,
                pids_group_dir,
                worker_name,
                limits,
            )?),
            Enforcement::Rlimit => WorkerConfinement::Rlimit {
                memory_bytes: limits.memory_bytes,
            },
        })
    }

    /// The `cgroup.procs` files the exec wrapper writes its pid to.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        match self {
            WorkerConfinement::CgroupV2(group) => vec![group.procs_file()],
            WorkerConfinement::CgroupV1(group) => group.procs_files(),
            WorkerConfinement::Rlimit { .. } => Vec::new(),
        }
    }

    /// The rlimits the exec wrapper sets. Core dumps are always off; with no cgroup, `RLIMIT_DATA`
    /// caps the heap (not `RLIMIT_AS`: the Dart VM and V8 reserve large virtual ranges up front).
    pub fn rlimits(&self, limits: WorkerLimits) -> Vec<(RlimitName, u64)> {
        let mut rlimits = vec![
            (RlimitName::CoreSize, 0),
            (RlimitName::OpenFiles, limits.max_open_files),
        ];
        if let WorkerConfinement::Rlimit { memory_bytes } = self {
            rlimits.push((RlimitName::Data, *memory_bytes));
        }
        rlimits
    }

    /// True when the kernel killed a process of this worker for exceeding its memory cap.
    pub fn memory_limit_hit(&self) -> bool {
        match self {
            WorkerConfinement::CgroupV2(group) => group.oom_kills() > 0,
            WorkerConfinement::CgroupV1(group) => group.oom_kills() > 0,
            WorkerConfinement::Rlimit { .. } => false,
        }
    }

    /// Peak memory of the whole worker tree, where the mechanism tracks it.
    pub fn peak_memory_bytes(&self) -> Option<u64> {
        match self {
            WorkerConfinement::CgroupV2(group) => group.peak_memory_bytes(),
            WorkerConfinement::CgroupV1(group) => group.peak_memory_bytes(),
            WorkerConfinement::Rlimit { .. } => None,
        }
    }

    /// SIGKILLs every process in the worker's cgroups (those that left the process group included).
    pub fn kill_all(&self) {
        match self {
            WorkerConfinement::CgroupV2(group) => group.kill_all(),
            WorkerConfinement::CgroupV1(group) => group.kill_all(),
            WorkerConfinement::Rlimit { .. } => {}
        }
    }

    /// Removes the worker's cgroups; call after the worker was killed and reaped.
    pub fn remove(&self) {
        match self {
            WorkerConfinement::CgroupV2(group) => group.remove(),
            WorkerConfinement::CgroupV1(group) => group.remove(),
            WorkerConfinement::Rlimit { .. } => {}
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
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
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
        .find_map(|line| {
            line.strip_prefix(key)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

pub(crate) fn read_number(file: &Path) -> Option<u64> {
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}
