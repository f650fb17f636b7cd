//! # The system-call policy of every worker
//!
//! A function is a client: it computes, reads its own files, talks to the network (under its
//! network policy) and answers. The kernel refuses a worker everything else, with an ordinary
//! error the function sees as an exception (`EPERM`, "Operation not permitted"), never by killing
//! it:
//!
//! | refused | system calls | why |
//! |---|---|---|
//! | new processes | `fork`, `vfork`, `clone` without `CLONE_THREAD`, `execveat` (`clone3` answers `ENOSYS`, so the C library falls back to `clone`, which is checked) | "no process execution, no shell access"; threads still work |
//! | looking into other processes | `ptrace`, `process_vm_readv`, `process_vm_writev`, `kcmp`, `pidfd_getfd` | reading or steering another worker |
//! | changing the file system view | `mount`, `umount2`, `pivot_root`, `chroot`, `open_tree`, `move_mount`, `fsopen`, `fsconfig`, `fsmount`, `fspick`, `mount_setattr` | escaping the read-only root |
//! | new or other namespaces | `unshare`, `setns` | a user namespace hands out capabilities; namespaces are how sandboxes are escaped |
//! | kernel attack surface | `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_setup`, `io_uring_enter`, `io_uring_register`, `keyctl`, `add_key`, `request_key`, `open_by_handle_at`, `name_to_handle_at`, `lookup_dcookie`, `uselib`, `personality` (other than querying it) | the calls behind most container escapes; no function needs them |
//! | the machine itself | `init_module`, `finit_module`, `delete_module`, `kexec_load`, `kexec_file_load`, `reboot`, `swapon`, `swapoff`, `acct`, `syslog`, `quotactl`, `iopl`, `ioperm`, `vhangup`, `settimeofday`, `clock_settime`, `sethostname`, `setdomainname` | administration, never a function's business |
//! | servers and raw networking | `socket` of any family but IPv4 and IPv6, `socket` of type `SOCK_RAW` or `SOCK_PACKET`, `socketpair` of any family but Unix, `bind`, `listen` | raw and packet sockets, netlink, abstract Unix sockets of the host; a function never serves connections |
//!
//! Everything else is allowed. The filter is installed last, just before the runtime's `execve`,
//! after `no_new_privs` is set; it is inherited by every thread and cannot be removed. It is built
//! with `seccompiler` (the rust-vmm crate Firecracker uses: a pure-Rust BPF compiler with argument
//! conditions and an architecture check, no C library to install), one filter per error number.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Condition,
    SeccompFilter, SeccompRule, TargetArch,
};

/// The compiled filters, installed in order.
#[derive(Debug, Clone)]
pub struct SyscallPolicy {
    pub filters: Vec<BpfProgram>,
}

/// System calls refused unconditionally.
const ALWAYS_REFUSED: &[i64] = &[
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_execveat,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_lookup_dcookie,
    libc::SYS_uselib,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_syslog,
    libc::SYS_quotactl,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_vhangup,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_bind,
    libc::SYS_listen,
];

/// `personality(0xffffffff)` only reads the current persona.
const PERSONALITY_QUERY: u64 = 0xffff_ffff;
/// The low bits of `socket`'s type argument; the rest are `SOCK_NONBLOCK` and `SOCK_CLOEXEC`.
const SOCKET_TYPE_MASK: u64 = 0xf;
const SOCK_PACKET: u64 = 10;

/// Errors building the policy (a bug in the rules, never the function's doing).
#[derive(Debug, thiserror::Error)]
#[error("build the system-call filter: {0}")]
pub struct PolicyError(#[from] seccompiler::BackendError);

impl SyscallPolicy {
    /// The policy above, compiled for this machine.
    pub fn build() -> Result<Self, PolicyError> {
        let mut refused: BTreeMap<i64, Vec<SeccompRule>> =
            ALWAYS_REFUSED.iter().map(|&number| (number, Vec::new())).collect();
        // A new process, not a new thread: clone's first argument lacks CLONE_THREAD.
        refused.insert(
            libc::SYS_clone,
            vec![rule(vec![condition(0, Len::Qword, Op::MaskedEq(libc::CLONE_THREAD as u64), 0)?])?],
        );
        refused.insert(
            libc::SYS_personality,
            vec![rule(vec![
                condition(0, Len::Dword, Op::Ne, PERSONALITY_QUERY)?,
                condition(0, Len::Dword, Op::Ne, 0)?,
            ])?],
        );
        refused.insert(
            libc::SYS_socket,
            vec![
                rule(vec![
                    condition(0, Len::Dword, Op::Ne, libc::AF_INET as u64)?,
                    condition(0, Len::Dword, Op::Ne, libc::AF_INET6 as u64)?,
                ])?,
                rule(vec![condition(1, Len::Dword, Op::MaskedEq(SOCKET_TYPE_MASK), libc::SOCK_RAW as u64)?])?,
                rule(vec![condition(1, Len::Dword, Op::MaskedEq(SOCKET_TYPE_MASK), SOCK_PACKET)?])?,
            ],
        );
        refused
            .insert(libc::SYS_socketpair, vec![rule(vec![condition(0, Len::Dword, Op::Ne, libc::AF_UNIX as u64)?])?]);
        let refuse = filter(refused, SeccompAction::Errno(libc::EPERM as u32))?;
        // clone3 passes its flags in memory, where a filter cannot look: answer "not implemented"
        // so the C library falls back to clone, whose flags the rule above checks.
        let clone3 =
            filter(BTreeMap::from([(libc::SYS_clone3, Vec::new())]), SeccompAction::Errno(libc::ENOSYS as u32))?;
        Ok(Self { filters: vec![refuse, clone3] })
    }

    /// Sets `no_new_privs` and installs the filters on the calling thread.
    pub fn install(&self) -> Result<(), String> {
        for filter in &self.filters {
            seccompiler::apply_filter(filter).map_err(|error| format!("install the system-call filter: {error}"))?;
        }
        Ok(())
    }
}

fn condition(argument: u8, length: Len, op: Op, value: u64) -> Result<Condition, PolicyError> {
    Ok(Condition::new(argument, length, op, value)?)
}

fn rule(conditions: Vec<Condition>) -> Result<SeccompRule, PolicyError> {
    Ok(SeccompRule::new(conditions)?)
}

fn filter(rules: BTreeMap<i64, Vec<SeccompRule>>, on_match: SeccompAction) -> Result<BpfProgram, PolicyError> {
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, on_match, TargetArch::x86_64)?;
    Ok(filter.try_into()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_compiles_into_two_filters_of_sane_size() {
        let policy = SyscallPolicy::build().unwrap();
        assert_eq!(policy.filters.len(), 2);
        // BPF programs are limited to 4096 instructions; ours must stay far below.
        assert!(policy.filters.iter().all(|filter| !filter.is_empty() && filter.len() < 1024));
    }

    #[test]
    fn every_refused_call_is_listed_once() {
        let mut seen = std::collections::HashSet::new();
        for number in ALWAYS_REFUSED {
            assert!(seen.insert(number), "system call {number} is listed twice");
        }
        for conditional in [libc::SYS_clone, libc::SYS_socket, libc::SYS_socketpair, libc::SYS_personality] {
            assert!(!seen.contains(&conditional), "{conditional} has conditions and must not be refused outright");
        }
    }
}
