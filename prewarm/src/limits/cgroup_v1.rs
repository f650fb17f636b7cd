//! cgroup v1: one group per worker in the `memory` hierarchy and one in the `pids` hierarchy.

use std::path::{Path, PathBuf};

use super::{create_dir, kill_until_empty, read_keyed_counter, remove_group_dir, write_control};
use super::{LimitsError, WorkerLimits};

#[derive(Debug)]
pub struct WorkerGroup {
    memory_dir: PathBuf,
    pids_dir: PathBuf,
    /// In the `freezer` hierarchy, where the host has one.
    freezer_dir: Option<PathBuf>,
}

impl WorkerGroup {
    pub fn create(
        memory_parent: &Path,
        pids_parent: &Path,
        freezer_parent: Option<&Path>,
        name: &str,
    ) -> Result<Self, LimitsError> {
        let group = WorkerGroup {
            memory_dir: memory_parent.join(name),
            pids_dir: pids_parent.join(name),
            freezer_dir: freezer_parent.map(|parent| parent.join(name)),
        };
        create_dir(&group.memory_dir)?;
        create_dir(&group.pids_dir)?;
        if let Some(freezer_dir) = &group.freezer_dir {
            create_dir(freezer_dir)?;
        }
        Ok(group)
    }

    pub fn open_freezer(&self) -> Option<super::Freezer> {
        super::Freezer::open(&self.freezer_dir.as_ref()?.join("freezer.state"), b"FROZEN", b"THAWED")
    }

    /// Writes the worker's limits; also restarts the peak counter, since groups are reused.
    pub fn apply(&self, limits: WorkerLimits) -> Result<(), LimitsError> {
        let bytes = limits.memory_bytes.to_string();
        // memory+swap may never be below memory: lower it first when shrinking, raise it last when growing.
        let memsw = self.memory_dir.join("memory.memsw.limit_in_bytes");
        let limit = self.memory_dir.join("memory.limit_in_bytes");
        if memsw.exists() && write_control(&memsw, &bytes).is_ok() {
            write_control(&limit, &bytes)?;
        } else {
            write_control(&limit, &bytes)?;
            if memsw.exists() {
                write_control(&memsw, &bytes)?;
            }
        }
        write_control(&self.pids_dir.join("pids.max"), &limits.max_pids.to_string())?;
        let peak = self.memory_dir.join("memory.max_usage_in_bytes");
        if peak.exists() {
            write_control(&peak, "0")?;
        }
        Ok(())
    }

    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.memory_dir.join("cgroup.procs"), self.pids_dir.join("cgroup.procs")];
        files.extend(self.freezer_dir.as_ref().map(|dir| dir.join("cgroup.procs")));
        files
    }

    pub fn oom_kills(&self) -> u64 {
        read_keyed_counter(&self.memory_dir.join("memory.oom_control"), "oom_kill")
    }

    pub fn open_peak_file(&self) -> Option<std::fs::File> {
        std::fs::File::open(self.memory_dir.join("memory.max_usage_in_bytes")).ok()
    }

    pub fn kill_all(&self) {
        // The pids group lists every task the worker ever forked, including ones that called setsid.
        kill_until_empty(&self.pids_dir.join("cgroup.procs"));
        kill_until_empty(&self.memory_dir.join("cgroup.procs"));
    }

    pub fn remove(&self) {
        remove_group_dir(&self.memory_dir);
        remove_group_dir(&self.pids_dir);
        if let Some(freezer_dir) = &self.freezer_dir {
            remove_group_dir(freezer_dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_limits_into_a_fake_hierarchy_and_reads_counters_back() {
        let root = tempfile::tempdir().unwrap();
        let (memory, pids) = (root.path().join("memory"), root.path().join("pids"));
        std::fs::create_dir_all(memory.join("w1")).unwrap();
        std::fs::create_dir_all(&pids).unwrap();
        std::fs::write(memory.join("w1/memory.memsw.limit_in_bytes"), "").unwrap();
        std::fs::write(memory.join("w1/memory.max_usage_in_bytes"), "999\n").unwrap();
        let group = WorkerGroup::create(&memory, &pids, None, "w1").unwrap();
        group.apply(WorkerLimits { memory_bytes: 64 << 20, max_pids: 32, max_open_files: 256 }).unwrap();
        assert_eq!(std::fs::read_to_string(memory.join("w1/memory.limit_in_bytes")).unwrap(), "67108864");
        assert_eq!(std::fs::read_to_string(memory.join("w1/memory.memsw.limit_in_bytes")).unwrap(), "67108864");
        assert_eq!(std::fs::read_to_string(pids.join("w1/pids.max")).unwrap(), "32");
        assert_eq!(std::fs::read_to_string(memory.join("w1/memory.max_usage_in_bytes")).unwrap(), "0");
        std::fs::write(memory.join("w1/memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n").unwrap();
        assert_eq!(group.oom_kills(), 2);
        assert!(group.open_peak_file().is_some());
    }
}
