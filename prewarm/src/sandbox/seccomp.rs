//! # The system-call policy of every worker
//!
//! A function is a client: it computes, reads its own files, talks to the network (under its
//! network policy) and answers. The kernel refuses a worker everything else, with an ordinary
//! error the function sees as an exception (`EPERM`, "Operation not permitted"), never by killing
//! it. [`REFUSED`] lists what is refused, by purpose (docs/security.md renders it).
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

/// One purpose of the policy: the calls refused outright, and those refused on a condition
/// (checked by the rules in [`SyscallPolicy::build`], described here for people).
#[derive(Debug)]
pub struct RefusedCalls {
    pub purpose: &'static str,
    pub calls: &'static [(&'static str, i64)],
    pub conditional: &'static str,
    pub why: &'static str,
}

macro_rules! calls {
    ($($name:ident),* $(,)?) => { &[$((stringify!($name), libc::$name)),*] };
}

/// Everything the filter refuses, by purpose. Each refused call answers `EPERM`, except `clone3`
/// (`ENOSYS`, see `conditional`).
pub const REFUSED: &[RefusedCalls] = &[
    RefusedCalls {
        purpose: "new processes",
        calls: calls!(SYS_fork, SYS_vfork, SYS_execveat),
        conditional: "`clone` without `CLONE_THREAD`; `clone3` answers `ENOSYS`, so the C library falls back to `clone`, which is checked",
        why: "no process execution, no shell access; threads still work",
    },
    RefusedCalls {
        purpose: "looking into other processes",
        calls: calls!(SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, SYS_pidfd_getfd),
        conditional: "",
        why: "reading or steering another worker",
    },
    RefusedCalls {
        purpose: "changing the file system view",
        calls: calls!(
            SYS_mount,
            SYS_umount2,
            SYS_pivot_root,
            SYS_chroot,
            SYS_open_tree,
            SYS_move_mount,
            SYS_fsopen,
            SYS_fsconfig,
            SYS_fsmount,
            SYS_fspick,
            SYS_mount_setattr,
        ),
        conditional: "",
        why: "escaping the read-only root",
    },
    RefusedCalls {
        purpose: "new or other namespaces",
        calls: calls!(SYS_unshare, SYS_setns),
        conditional: "",
        why: "a user namespace hands out capabilities; namespaces are how sandboxes are escaped",
    },
    RefusedCalls {
        purpose: "the kernel's riskier interfaces",
        calls: calls!(
            SYS_bpf,
            SYS_perf_event_open,
            SYS_userfaultfd,
            SYS_io_uring_setup,
            SYS_io_uring_enter,
            SYS_io_uring_register,
            SYS_keyctl,
            SYS_add_key,
            SYS_request_key,
            SYS_open_by_handle_at,
            SYS_name_to_handle_at,
            SYS_lookup_dcookie,
            SYS_uselib,
        ),
        conditional: "`personality` other than querying it",
        why: "the calls behind most container escapes; no function needs them",
    },
    RefusedCalls {
        purpose: "administering the machine",
        calls: calls!(
            SYS_init_module,
            SYS_finit_module,
            SYS_delete_module,
            SYS_kexec_load,
            SYS_kexec_file_load,
            SYS_reboot,
            SYS_swapon,
            SYS_swapoff,
            SYS_acct,
            SYS_syslog,
            SYS_quotactl,
            SYS_iopl,
            SYS_ioperm,
            SYS_vhangup,
            SYS_settimeofday,
            SYS_clock_settime,
            SYS_sethostname,
            SYS_setdomainname,
        ),
        conditional: "",
        why: "never a function's business",
    },
    RefusedCalls {
        purpose: "servers and raw networking",
        calls: calls!(SYS_bind, SYS_listen),
        conditional: "`socket` of any family but IPv4 and IPv6, or of type `SOCK_RAW` or `SOCK_PACKET`; `socketpair` of any family but Unix",
        why: "raw and packet sockets, netlink, abstract Unix sockets of the host; a function never serves connections",
    },
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
            REFUSED.iter().flat_map(|group| group.calls).map(|&(_, number)| (number, Vec::new())).collect();
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
        for (name, number) in REFUSED.iter().flat_map(|group| group.calls) {
            assert!(seen.insert(number), "system call {name} is listed twice");
            assert!(name.starts_with("SYS_"), "{name}: the names are libc's constants");
        }
        for conditional in [libc::SYS_clone, libc::SYS_socket, libc::SYS_socketpair, libc::SYS_personality] {
            assert!(!seen.contains(&conditional), "{conditional} has conditions and must not be refused outright");
        }
    }
}
