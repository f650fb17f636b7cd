//! cgroup v1: one group per worker in the `memory` hierarchy and one in the `pids` hierarchy.

use std::path::{Path, PathBuf};

use super::{
    create_dir, kill_until_empty, read_keyed_counter, read_number, remove_group_dir, write_control,
};
use super::{LimitsError, WorkerLimits};

#[derive(Debug)]
pub struct WorkerGroup {
    memory_dir: PathBuf,
    pids_dir: PathBuf,
}

impl WorkerGroup {
    pub fn create(
        memory_parent: &Path,
        pids_parent: &Path,
        name: &str,
        limits: WorkerLimits,
    ) -> Result<Self, LimitsError> {
        let group = WorkerGroup {
            memory_dir: memory_parent.join(name),
            pids_dir: pids_parent.join(name),
        };
        create_dir(&group.memory_dir)?;
        create_dir(&group.pids_dir)?;
        let bytes = limits.memory_bytes.to_string();
        write_control(&group.memory_dir.join("memory.limit_in_bytes"), &bytes)?;
        // With swap accounting, memory+swap gets the same cap so a worker cannot page out past it.
        // The file is absent when the kernel has no swap accounting, which is fine.
        let memsw = group.memory_dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write_control(&memsw, &bytes)?;
        }
        write_control(
            &group.pids_dir.join("pids.max"),
            &limits.max_pids.to_string(),
        )?;
        Ok(group)
    }

    pub fn procs_files(&self) -> Vec<PathBuf> {
        vec![
            self.memory_dir.join("cgroup.procs"),
            self.pids_dir.join("cgroup.procs"),
        ]
    }

    pub fn oom_kills(&self) -> u64 {
        read_keyed_counter(&self.memory_dir.join("memory.oom_control"), "oom_kill")
    }

    pub fn peak_memory_bytes(&self) -> Option<u64> {
        read_number(&self.memory_dir.join("memory.max_usage_in_bytes"))
    }

    pub fn kill_all(&self) {
        // The pids group lists every task the worker ever forked, including ones that called setsid.
        kill_until_empty(&self.pids_dir.join("cgroup.procs"));
        kill_until_empty(&self.memory_dir.join("cgroup.procs"));
    }

    pub fn remove(&self) {
        remove_group_dir(&self.memory_dir);
        remove_group_dir(&self.pids_dir);
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
        let limits = WorkerLimits {
            memory_bytes: 64 << 20,
            max_pids: 32,
            max_open_files: 256,
        };
        let group = WorkerGroup::create(&memory, &pids, "w1", limits).unwrap();
        assert_eq!(
            std::fs::read_to_string(memory.join("w1/memory.limit_in_bytes")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(memory.join("w1/memory.memsw.limit_in_bytes")).unwrap(),
            "67108864"
        );
        assert_eq!(
            std::fs::read_to_string(pids.join("w1/pids.max")).unwrap(),
            "32"
        );
        std::fs::write(
            memory.join("w1/memory.oom_control"),
            "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n",
        )
        .unwrap();
        std::fs::write(memory.join("w1/memory.max_usage_in_bytes"), "1234\n").unwrap();
        assert_eq!(group.oom_kills(), 2);
        assert_eq!(group.peak_memory_bytes(), Some(1234));
    }
}
