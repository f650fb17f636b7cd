//! The sandbox steps the exec wrapper takes on itself (see `exec_wrapper` for where they sit).
//!
//! Ahead of time, in a spare shell ([`enter_namespaces`]): new mount, pid, ipc, uts and cgroup
//! namespaces, then a fork, because a process cannot move into a pid namespace itself, only its
//! children are born there. The parent stays behind as a small *monitor* in the host's pid
//! namespace (the pool's pidfd and process group point at it); it mirrors the child's exit.
//! The child, pid 1 of its own namespace, waits for the launch plan.
//!
//! At launch, in the child: [`join_network`] (by path, while the host's `/proc` is still in
//! view), [`enter_root`] (the function directory, a private `/tmp` and its own `/proc`, with what
//! still describes the host masked, on the runtime's template, then `pivot_root` and the old root
//! detached), rlimits and `chdir` (in the
//! wrapper), [`hand_over_pipes`] (the worker's pipes given to the function's uid),
//! [`drop_identity`] (capability bounding set emptied, no supplementary groups, the function's
//! uid and gid), the Landlock ruleset (`exec_allowlist`), then `no_new_privs` and the system-call
//! filter, then `execve`.

use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Gid, Uid};

use super::rootfs::{bind_read_only, inside, mount_fs};

/// The per-launch part of the sandbox, sent with the launch plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxSteps {
    /// The runtime's template root (inside the shell's mount namespace).
    pub root: PathBuf,
    /// Host paths bound read-only at paths inside the root (the function, its identity files).
    pub binds: Vec<(PathBuf, PathBuf)>,
    /// Host directories bound writable (never executable): only a dependency builder has them,
    /// for what it installs and the shared download cache.
    pub writable_binds: Vec<(PathBuf, PathBuf)>,
    /// The file mode creation mask of the program, when not the inherited one: a builder writes
    /// the shared cache with `0`, so the next function's builder (another uid) can add to it.
    pub umask: Option<u32>,
    /// Size of the private `/tmp`.
    pub tmp_bytes: u64,
    pub uid: u32,
    pub gid: u32,
    /// The network namespace to join (`/proc/SERVER/fd/N`: the function's own for `egress`, the
    /// server's loopback-only one for `none`).
    pub network_namespace: PathBuf,
    /// Only the runtime may be executed (Landlock; see `exec_allowlist`), where the host has it.
    pub exec_only_runtime: bool,
}

/// New mount, pid, ipc, uts and cgroup namespaces, then a fork. Returns in the child; the parent
/// becomes the monitor and never returns.
pub fn enter_namespaces() -> Result<(), String> {
    // A cgroup namespace too, entered after the wrapper joined its groups: the worker sees its
    // group as `/`, not the server's path (which names the server's pid).
    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    nix::sched::unshare(flags).map_err(|error| format!("create the worker's namespaces: {error}"))?;
    // SAFETY: the exec wrapper is single-threaded, so the child may run any code after fork.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
                .map_err(|error| format!("set the worker's parent-death signal: {error}"))?;
            Ok(())
        }
        Ok(ForkResult::Parent { child }) => monitor(child),
        Err(error) => Err(format!("fork into the worker's pid namespace: {error}")),
    }
}

/// Waits for the sandboxed child and ends the same way, so the pool sees the runtime's own exit.
fn monitor(child: nix::unistd::Pid) -> ! {
    // Only the child may hold the worker's pipes: the pool must see them close when it dies.
    for fd in [0, 1, 3, 4] {
        let _ = nix::unistd::close(fd);
    }
    let _ = crate::exec_wrapper::close_inherited_descriptors();
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
    loop {
        match nix::sys::wait::waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => std::process::exit(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                // SAFETY: restoring the default disposition installs no handler.
                unsafe {
                    libc::signal(signal as libc::c_int, libc::SIG_DFL);
                }
                let _ = nix::sys::signal::kill(nix::unistd::getpid(), signal);
                let _ = nix::sys::signal::kill(nix::unistd::getpid(), Signal::SIGKILL);
                std::process::exit(128 + signal as i32);
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => std::process::exit(126),
        }
    }
}

/// Builds the worker's root on its runtime's template and makes it `/`.
pub fn enter_root(steps: &SandboxSteps) -> Result<(), String> {
    let root = &steps.root;
    for (source, target) in &steps.binds {
        bind_read_only(source, &inside(root, target), MsFlags::MS_NOSUID | MsFlags::MS_NODEV)?;
    }
    for (source, target) in &steps.writable_binds {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        super::rootfs::bind_writable(source, &inside(root, target), flags)?;
    }
    let private = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_fs(
        "tmpfs",
        &root.join("tmp"),
        "tmpfs",
        private,
        Some(&format!("size={},nr_inodes=8192,mode=1777", steps.tmp_bytes)),
    )?;
    mount_fs("proc", &root.join("proc"), "proc", private, None)?;
    mask_host_information(&root.join("proc"))?;
    nix::unistd::chdir(root).map_err(|error| format!("enter {}: {error}", root.display()))?;
    // pivot_root(".", "."): the old root ends up stacked on the new one, and is detached next.
    nix::unistd::pivot_root(".", ".").map_err(|error| format!("pivot_root into {}: {error}", root.display()))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|error| format!("detach the host's root: {error}"))?;
    nix::unistd::chdir("/").map_err(|error| format!("chdir /: {error}"))
}

/// Files of the worker's own procfs that still describe the host, read empty (`/dev/null` bound
/// over them): what Docker masks (`kcore`, `keys`, `timer_list`, `sched_debug`, `latency_stats`,
/// `timer_stats`), and the kernel's command line and configuration, the key quota of every uid on
/// the host (`key-users`), and the kernel's symbol table.
const MASKED_PROC_FILES: &[&str] = &[
    "kcore",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "latency_stats",
    "cmdline",
    "config.gz",
    "kallsyms",
    "sysrq-trigger",
];

/// Directories of it that do, shown empty (an empty read-only tmpfs over them): hardware
/// (`acpi`, `scsi`, `asound`, `irq`) and the host's load (`pressure`).
const MASKED_PROC_DIRS: &[&str] = &["acpi", "scsi", "asound", "irq", "pressure"];

/// Masks what [`MASKED_PROC_FILES`] and [`MASKED_PROC_DIRS`] name in the worker's `/proc` (at
/// `proc`, before `pivot_root`); what this kernel does not have is skipped.
fn mask_host_information(proc: &Path) -> Result<(), String> {
    for file in MASKED_PROC_FILES {
        let target = proc.join(file);
        if target.exists() {
            bind_read_only(Path::new("/dev/null"), &target, MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC)?;
        }
    }
    for dir in MASKED_PROC_DIRS {
        let target = proc.join(dir);
        if target.is_dir() {
            let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            // Read-only, one inode (its root): nothing can be put there. (`size=0` would mean no limit.)
            mount_fs("tmpfs", &target, "tmpfs", flags, Some("size=4k,nr_inodes=1"))?;
        }
    }
    Ok(())
}

/// No memfd of the worker's pid namespace can be executed (`vm.memfd_noexec = 2`, kernel 6.3 and
/// later): Landlock's execute right is checked on paths, and a program copied into a memfd and
/// run from `/proc/self/fd/N` has none. Written as root, after `enter_root` (its own `/proc`),
/// into the namespace's own copy of the setting; a kernel without it has nothing to set.
pub fn refuse_executable_memfds() -> Result<(), String> {
    match std::fs::write("/proc/sys/vm/memfd_noexec", "2") {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(format!("make memfds non-executable: {error}")),
    }
}

/// Joins the worker's network namespace (see `network`): never the host's. Runs before
/// `enter_root`, while the host's `/proc` (where the server's handle is) is still visible.
pub fn join_network(namespace: &Path) -> Result<(), String> {
    let handle = std::fs::File::open(namespace)
        .map_err(|error| format!("open the network namespace {}: {error}", namespace.display()))?;
    nix::sched::setns(&handle, CloneFlags::CLONE_NEWNET)
        .map_err(|error| format!("join the network namespace {}: {error}", namespace.display()))?;
    nix::unistd::sethostname("function").map_err(|error| format!("set the hostname: {error}"))
}

/// The descriptors a worker inherits as pipes: stdout and stderr (its log lines) and the
/// protocol's request and response pipes.
pub const WORKER_PIPES: [i32; 4] = [1, 2, crate::protocol::REQUEST_FD, crate::protocol::RESPONSE_FD];

/// Gives the worker's pipes to the function's uid and gid, while the wrapper is still root.
///
/// The server makes the pipes as root, and the kernel creates a pipe's inode mode 0600, owned by
/// its creator. Using an inherited descriptor needs no permission, but opening the same pipe again
/// by path does: `open("/dev/fd/3")` goes through `/proc/self/fd/3` to the pipe's inode and checks
/// it like a file's. The Dart VM has no public way to adopt a raw descriptor (dart:io opens every
/// `File` and `RandomAccessFile` by path: `File::Open` in runtime/bin/file_linux.cc is an `open(2)`
/// of the path), so the Dart adapter opens `/dev/fd/3` and `/dev/fd/4`, and as the function's uid
/// that answered `EACCES` until the pipes were its own. Owned by the function's uid, still mode
/// 0600: the worker can open them again; no other uid can, and no other tenant can even name
/// them (its own pid namespace, and `/proc/PID/fd` needs ptrace rights over the worker).
/// Descriptors that are not pipes (a terminal or file given by hand) are left as they are.
pub fn hand_over_pipes(uid: u32, gid: u32) -> Result<(), String> {
    use std::os::fd::BorrowedFd;
    for fd in WORKER_PIPES {
        // SAFETY: the wrapper owns its standard and protocol descriptors for its whole life; this
        // borrow ends before anything could close them.
        let descriptor = unsafe { BorrowedFd::borrow_raw(fd) };
        let Ok(stat) = nix::sys::stat::fstat(descriptor) else { continue };
        if stat.st_mode & libc::S_IFMT != libc::S_IFIFO {
            continue;
        }
        nix::unistd::fchown(descriptor, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(|error| format!("give pipe {fd} to uid {uid}: {error}"))?;
    }
    Ok(())
}

/// Becomes the function's uid and gid with no capabilities left anywhere: the bounding set is
/// emptied first (so no later `execve` can bring any back), then supplementary groups, gid, uid.
pub fn drop_identity(uid: u32, gid: u32) -> Result<(), String> {
    if uid == 0 || gid == 0 {
        return Err("a worker never runs as root".into());
    }
    for capability in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer; EINVAL past the last capability is expected.
        unsafe {
            libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0);
        }
    }
    nix::unistd::setgroups(&[]).map_err(|error| format!("clear supplementary groups: {error}"))?;
    let (gid, uid) = (Gid::from_raw(gid), Uid::from_raw(uid));
    nix::unistd::setresgid(gid, gid, gid).map_err(|error| format!("set gid {gid}: {error}"))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|error| format!("set uid {uid}: {error}"))?;
    if nix::unistd::geteuid() != uid || nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err("the uid change did not hold".into());
    }
    Ok(())
}
