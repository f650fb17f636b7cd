//! cgroup v2: one group per worker below our delegated parent group.

use std::path::{Path, PathBuf};

use super::{create_dir, kill_until_empty, read_keyed_counter, remove_group_dir, write_control};
use super::{LimitsError, WorkerLimits};

#[derive(Debug)]
pub struct WorkerGroup {
    dir: PathBuf,
}

impl WorkerGroup {
    pub fn create(parent: &Path, name: &str) -> Result<Self, LimitsError> {
        let group = WorkerGroup { dir: parent.join(name) };
        create_dir(&group.dir)?;
        Ok(group)
    }

    /// Writes the worker's limits. `memory.peak` cannot be restarted before Linux 6.12, so on a
    /// reused group it reports the group's peak since it was created.
    pub fn apply(&self, limits: WorkerLimits) -> Result<(), LimitsError> {
        write_control(&self.dir.join("memory.max"), &limits.memory_bytes.to_string())?;
        let swap = self.dir.join("memory.swap.max");
        if swap.exists() {
            write_control(&swap, "0")?;
        }
        write_control(&self.dir.join("pids.max"), &limits.max_pids.to_string())
    }

    pub fn procs_file(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn oom_kills(&self) -> u64 {
        read_keyed_counter(&self.dir.join("memory.events"), "oom_kill")
    }

    /// `memory.peak` exists from Linux 5.19.
    pub fn open_peak_file(&self) -> Option<std::fs::File> {
        std::fs::File::open(self.dir.join("memory.peak")).ok()
    }

    /// `cgroup.freeze` exists in every non-root group from Linux 5.2.
    pub fn open_freezer(&self) -> Option<super::Freezer> {
        super::Freezer::open(&self.dir.join("cgroup.freeze"), b"1", b"0")
    }

    pub fn kill_all(&self) {
        // `cgroup.kill` (Linux 5.14) kills the whole group atomically; older kernels get the loop.
        let kill_file = self.dir.join("cgroup.kill");
        if !(kill_file.exists() && std::fs::write(&kill_file, "1").is_ok()) {
            kill_until_empty(&self.procs_file());
        }
    }

    pub fn remove(&self) {
        remove_group_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_limits_into_a_fake_group_and_reads_counters_back() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("w2")).unwrap();
        std::fs::write(root.path().join("w2/memory.swap.max"), "max").unwrap();
        let group = WorkerGroup::create(root.path(), "w2").unwrap();
        group.apply(WorkerLimits { memory_bytes: 1 << 20, max_pids: 8, max_open_files: 64 }).unwrap();
        assert_eq!(std::fs::read_to_string(root.path().join("w2/memory.max")).unwrap(), "1048576");
        assert_eq!(std::fs::read_to_string(root.path().join("w2/memory.swap.max")).unwrap(), "0");
        assert_eq!(std::fs::read_to_string(root.path().join("w2/pids.max")).unwrap(), "8");
        std::fs::write(root.path().join("w2/memory.events"), "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n").unwrap();
        assert_eq!(group.oom_kills(), 1);
        assert!(group.open_peak_file().is_none());
    }
}
