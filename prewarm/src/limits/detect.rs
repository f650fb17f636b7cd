//! Chooses the best limit mechanism the host offers, and says why the better ones were passed over.

use std::path::Path;

use super::{create_dir, write_control, Enforcement, LimitsHost};

/// The chosen mechanism, and one line per better mechanism that was not usable.
#[derive(Debug, Clone)]
pub struct Detected {
    pub enforcement: Enforcement,
    pub passed_over: Vec<String>,
}

/// Probes cgroup v2, then v1, then falls back to rlimits. Creates our parent group(s) on success.
pub fn detect_enforcement(host: &LimitsHost) -> Detected {
    let mut passed_over = Vec::new();
    let wants = |name: &str| host.forced.as_deref().is_none_or(|forced| forced == name);

    if wants("cgroup-v2") {
        // A pure v2 host mounts cgroup2 at the root; hybrid hosts mount it at `unified`.
        for candidate in [host.cgroup_root.clone(), host.cgroup_root.join("unified")] {
            match try_cgroup_v2(&candidate, &host.group_name) {
                Ok(enforcement) => return Detected { enforcement, passed_over },
                Err(reason) => passed_over.push(format!("cgroup-v2 at {}: {reason}", candidate.display())),
            }
        }
    }
    if wants("cgroup-v1") {
        match try_cgroup_v1(&host.cgroup_root, &host.group_name) {
            Ok(enforcement) => return Detected { enforcement, passed_over },
            Err(reason) => passed_over.push(format!("cgroup-v1 at {}: {reason}", host.cgroup_root.display())),
        }
    }
    Detected { enforcement: Enforcement::Rlimit, passed_over }
}

fn try_cgroup_v2(mount: &Path, group_name: &str) -> Result<Enforcement, String> {
    let controllers = std::fs::read_to_string(mount.join("cgroup.controllers"))
        .map_err(|error| format!("not a cgroup2 mount ({error})"))?;
    let available: Vec<&str> = controllers.split_whitespace().collect();
    for needed in ["memory", "pids"] {
        if !available.contains(&needed) {
            return Err(format!(
                "the {needed} controller is not available (cgroup.controllers: {:?})",
                controllers.trim()
            ));
        }
    }
    write_control(&mount.join("cgroup.subtree_control"), "+memory +pids").map_err(|error| error.to_string())?;
    let group_dir = mount.join(group_name);
    create_dir(&group_dir).map_err(|error| error.to_string())?;
    write_control(&group_dir.join("cgroup.subtree_control"), "+memory +pids").map_err(|error| error.to_string())?;
    Ok(Enforcement::CgroupV2 { group_dir })
}

fn try_cgroup_v1(root: &Path, group_name: &str) -> Result<Enforcement, String> {
    let memory_root = root.join("memory");
    let pids_root = root.join("pids");
    for hierarchy in [&memory_root, &pids_root] {
        if !hierarchy.join("cgroup.procs").exists() {
            return Err(format!("{} is not a cgroup v1 hierarchy", hierarchy.display()));
        }
    }
    let memory_group_dir = memory_root.join(group_name);
    let pids_group_dir = pids_root.join(group_name);
    create_dir(&memory_group_dir).map_err(|error| error.to_string())?;
    create_dir(&pids_group_dir).map_err(|error| error.to_string())?;
    // Optional: without it, idle workers are not frozen (and the log says so).
    let freezer_root = root.join("freezer");
    let freezer_group_dir = freezer_root
        .join("cgroup.procs")
        .exists()
        .then(|| freezer_root.join(group_name))
        .filter(|dir| create_dir(dir).is_ok());
    Ok(Enforcement::CgroupV1 { memory_group_dir, pids_group_dir, freezer_group_dir })
}

/// Removes the parent group(s) created by detection, with any worker groups still below them
/// (their processes are killed first).
pub fn remove_parent_groups(enforcement: &Enforcement) {
    match enforcement {
        Enforcement::CgroupV2 { group_dir } => remove_group_tree(group_dir),
        Enforcement::CgroupV1 { memory_group_dir, pids_group_dir, freezer_group_dir } => {
            // Thawed first: a frozen task dies only once it runs again.
            if let Some(freezer_group_dir) = freezer_group_dir {
                thaw_tree(freezer_group_dir);
            }
            remove_group_tree(pids_group_dir);
            remove_group_tree(memory_group_dir);
            if let Some(freezer_group_dir) = freezer_group_dir {
                remove_group_tree(freezer_group_dir);
            }
        }
        Enforcement::Rlimit => {}
    }
}

/// Thaws every group under `dir` (v1 `freezer.state`).
fn thaw_tree(dir: &Path) {
    let state = dir.join("freezer.state");
    if state.is_file() {
        let _ = std::fs::write(state, "THAWED");
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten().filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir())) {
            thaw_tree(&entry.path());
        }
    }
}

fn remove_group_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                remove_group_tree(&entry.path());
            }
        }
    }
    super::kill_until_empty(&dir.join("cgroup.procs"));
    super::remove_group_dir(dir);
}

/// Removes the parent groups of servers that are gone (`containerpub-PID-N` with no process PID),
/// so a crashed server's groups do not pile up. Returns how many were removed.
pub fn remove_stale_groups(host: &LimitsHost) -> usize {
    let hierarchies = [
        host.cgroup_root.clone(),
        host.cgroup_root.join("unified"),
        host.cgroup_root.join("memory"),
        host.cgroup_root.join("pids"),
        host.cgroup_root.join("freezer"),
    ];
    let mut removed = 0;
    for hierarchy in hierarchies {
        let Ok(entries) = std::fs::read_dir(&hierarchy) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(owner) = name.strip_prefix("containerpub-").and_then(|rest| rest.split('-').next()) else {
                continue;
            };
            let Ok(pid) = owner.parse::<u32>() else { continue };
            if pid != std::process::id() && !host.proc_root.join(pid.to_string()).exists() {
                thaw_tree(&entry.path());
                remove_group_tree(&entry.path());
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(root: &Path, forced: Option<&str>) -> LimitsHost {
        LimitsHost {
            cgroup_root: root.to_path_buf(),
            proc_root: "/proc".into(),
            group_name: "cp-test".into(),
            forced: forced.map(str::to_string),
        }
    }

    #[test]
    fn groups_of_dead_servers_are_removed_and_live_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let proc_root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(proc_root.path().join("4242")).unwrap();
        for name in ["containerpub-4242-0", "containerpub-999999999-3/w1", "unrelated"] {
            std::fs::create_dir_all(root.path().join("memory").join(name)).unwrap();
        }
        let host = LimitsHost { proc_root: proc_root.path().to_path_buf(), ..host(root.path(), None) };
        assert_eq!(remove_stale_groups(&host), 1);
        assert!(root.path().join("memory/containerpub-4242-0").is_dir(), "its server is alive");
        assert!(!root.path().join("memory/containerpub-999999999-3").exists());
        assert!(root.path().join("memory/unrelated").is_dir());
    }

    #[test]
    fn prefers_v2_when_its_controllers_are_available() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        let detected = detect_enforcement(&host(root.path(), None));
        assert_eq!(detected.enforcement, Enforcement::CgroupV2 { group_dir: root.path().join("cp-test") });
        assert_eq!(std::fs::read_to_string(root.path().join("cgroup.subtree_control")).unwrap(), "+memory +pids");
    }

    #[test]
    fn hybrid_host_without_v2_controllers_falls_back_to_v1_and_says_why() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("unified")).unwrap();
        std::fs::write(root.path().join("unified/cgroup.controllers"), "\n").unwrap();
        for hierarchy in ["memory", "pids"] {
            std::fs::create_dir_all(root.path().join(hierarchy)).unwrap();
            std::fs::write(root.path().join(hierarchy).join("cgroup.procs"), "").unwrap();
        }
        let detected = detect_enforcement(&host(root.path(), None));
        assert_eq!(detected.enforcement.name(), "cgroup-v1");
        assert!(detected.passed_over.iter().any(|line| line.contains("memory controller is not available")));
        assert!(root.path().join("memory/cp-test").is_dir() && root.path().join("pids/cp-test").is_dir());
    }

    #[test]
    fn nothing_usable_means_rlimits_and_forcing_skips_detection() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(detect_enforcement(&host(root.path(), None)).enforcement, Enforcement::Rlimit);
        std::fs::write(root.path().join("cgroup.controllers"), "memory pids\n").unwrap();
        assert_eq!(detect_enforcement(&host(root.path(), Some("rlimit"))).enforcement, Enforcement::Rlimit);
    }
}
