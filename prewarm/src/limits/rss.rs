//! Reading a worker's resident memory from procfs (the RSS watchdog and per-invocation peak).

use std::path::Path;

/// Current resident set size of `pid` in bytes, from `/proc/PID/statm` (pages × page size).
pub fn current_rss_bytes(proc_root: &Path, pid: i32) -> Option<u64> {
    let statm = std::fs::read_to_string(proc_root.join(pid.to_string()).join("statm")).ok()?;
    let resident_pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(resident_pages * page_size())
}

/// Peak resident set size of `pid` in bytes (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss_bytes(proc_root: &Path, pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(proc_root.join(pid.to_string()).join("status")).ok()?;
    parse_vm_hwm(&status)
}

/// The first child of `pid` (a sandboxed worker's runtime, forked by the wrapper's monitor).
pub fn first_child(pid: i32) -> Option<i32> {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn page_size() -> u64 {
    static PAGE_SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *PAGE_SIZE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |size| size as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_our_own_rss_and_peak() {
        let pid = std::process::id() as i32;
        let current = current_rss_bytes(Path::new("/proc"), pid).unwrap();
        let peak = peak_rss_bytes(Path::new("/proc"), pid).unwrap();
        assert!(current > 0 && peak >= current / 2, "current {current} peak {peak}");
    }

    #[test]
    fn parses_vm_hwm_in_kib() {
        assert_eq!(parse_vm_hwm("Name:\tx\nVmHWM:\t   2048 kB\nVmRSS:\t1 kB\n"), Some(2 << 20));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
