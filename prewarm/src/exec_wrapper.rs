//! The exec wrapper: the few steps a worker takes between `posix_spawn` and the runtime's `exec`.
//!
//! Spawning with a `pre_exec` hook would force fork+exec (39 ms from a parent holding 1 GiB, see the
//! brief), so the pool spawns this small program with `posix_spawn` instead, and it applies the
//! limits to itself before replacing itself with the runtime, jailer style. In order:
//!
//! 1. ask for SIGKILL when the spawning thread dies, and exit if the parent already died;
//! 2. join each cgroup given (`cgroup.procs` files), so every descendant is accounted and capped;
//! 3. with `--await-plan`, wait for the rest of the plan on stdin (see below), then point stdin at
//!    `/dev/null`;
//! 4. set each rlimit given;
//! 5. change to the function's directory;
//! 6. `execve` the runtime, with the plan's environment if it carries one.
//!
//! With the sandbox on (`sandbox::enter` has the details), a shell also creates its namespaces and
//! forks into them right after step 2 (`--sandbox`), and a launch plan carries the sandbox steps
//! (`--root`, `--bind`, `--tmp-bytes`, `--uid`, `--gid`, `--netns`,
//! `--exec-only-runtime`): the network namespace is joined and the root entered before step 4,
//! the worker's pipes given to the function's uid (`enter::hand_over_pipes`: the Dart VM opens
//! them again by path), the function's identity taken and the Landlock ruleset applied after
//! step 5, and the system-call filter installed just before step 6. A sandboxed shell refuses a
//! plan without sandbox steps.
//!
//! Why `--await-plan`: joining a cgroup takes the kernel's cgroup-wide threadgroup lock for
//! writing, which waits for an RCU grace period unless another join happened just before: measured
//! here 0.05 ms back to back but 5.8 ms after 50 ms of quiet, and cold starts are usually quiet. So
//! the pool spawns *shells* ahead of time (steps 1–2 done, the worker's pipes already in place) and
//! a cold start only sends the plan: rlimits, directory, environment, program and arguments, as
//! NUL-separated arguments in the command-line syntax below, terminated by closing the pipe.
//!
//! Any failure exits with status 126 and one line on stderr naming the step, which the pool reports
//! as "runtime unavailable" with that line.

use std::ffi::{CString, OsString};
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::sys::resource::{setrlimit, Resource};

use crate::sandbox::enter::{self, SandboxSteps};
use crate::sandbox::seccomp::SyscallPolicy;

/// Exit status of the wrapper when a step fails before `exec`.
pub const WRAPPER_FAILURE_STATUS: i32 = 126;

/// Largest plan a shell accepts on stdin (oneshot requests travel in the environment).
pub const MAX_PLAN_BYTES: usize = 4 << 20;

/// The steps the wrapper takes, parsed from its command line (and, for shells, from stdin).
#[derive(Debug, Default, PartialEq)]
pub struct WrapperPlan {
    pub cgroup_procs_files: Vec<PathBuf>,
    pub rlimits: Vec<(RlimitName, u64)>,
    pub working_dir: Option<PathBuf>,
    pub expected_parent: Option<i32>,
    /// Read the rest of the plan from stdin before going on (a shell).
    pub await_plan: bool,
    /// Create the worker's namespaces ahead of the plan (a sandboxed shell).
    pub sandbox_shell: bool,
    /// The per-launch sandbox steps.
    pub sandbox: Option<SandboxSteps>,
    /// The complete environment of the runtime; `None` keeps the wrapper's own.
    pub env: Option<Vec<OsString>>,
    pub program: PathBuf,
    pub args: Vec<OsString>,
}

/// The rlimits the pool sets, by the name used on the wrapper's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitName {
    Data,
    AddressSpace,
    Processes,
    OpenFiles,
    CoreSize,
}

impl RlimitName {
    pub fn as_flag(self) -> &'static str {
        match self {
            RlimitName::Data => "data",
            RlimitName::AddressSpace => "as",
            RlimitName::Processes => "nproc",
            RlimitName::OpenFiles => "nofile",
            RlimitName::CoreSize => "core",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        [Self::Data, Self::AddressSpace, Self::Processes, Self::OpenFiles, Self::CoreSize]
            .into_iter()
            .find(|candidate| candidate.as_flag() == name)
    }

    fn resource(self) -> Resource {
        match self {
            RlimitName::Data => Resource::RLIMIT_DATA,
            RlimitName::AddressSpace => Resource::RLIMIT_AS,
            RlimitName::Processes => Resource::RLIMIT_NPROC,
            RlimitName::OpenFiles => Resource::RLIMIT_NOFILE,
            RlimitName::CoreSize => Resource::RLIMIT_CORE,
        }
    }
}

impl WrapperPlan {
    /// Renders the plan as the wrapper's arguments (everything after argv\[0\]).
    /// A shell's plan (`await_plan`) has no program: it comes later on stdin.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for file in &self.cgroup_procs_files {
            args.push("--join-cgroup".into());
            args.push(file.clone().into_os_string());
        }
        for (name, value) in &self.rlimits {
            args.push("--rlimit".into());
            args.push(format!("{}={value}", name.as_flag()).into());
        }
        if let Some(dir) = &self.working_dir {
            args.push("--chdir".into());
            args.push(dir.clone().into_os_string());
        }
        if let Some(parent) = self.expected_parent {
            args.push("--parent".into());
            args.push(parent.to_string().into());
        }
        for variable in self.env.iter().flatten() {
            args.push("--env".into());
            args.push(variable.clone());
        }
        if let Some(steps) = &self.sandbox {
            args.push("--root".into());
            args.push(steps.root.clone().into_os_string());
            for (source, target) in &steps.binds {
                args.push("--bind".into());
                args.push(source.clone().into_os_string());
                args.push(target.clone().into_os_string());
            }
            for (source, target) in &steps.writable_binds {
                args.push("--bind-rw".into());
                args.push(source.clone().into_os_string());
                args.push(target.clone().into_os_string());
            }
            if let Some(mask) = steps.umask {
                args.push("--umask".into());
                args.push(mask.to_string().into());
            }
            for (flag, value) in
                [("--tmp-bytes", steps.tmp_bytes), ("--uid", u64::from(steps.uid)), ("--gid", u64::from(steps.gid))]
            {
                args.push(flag.into());
                args.push(value.to_string().into());
            }
            args.push("--netns".into());
            args.push(steps.network_namespace.clone().into_os_string());
            if steps.exec_only_runtime {
                args.push("--exec-only-runtime".into());
            }
        }
        if self.sandbox_shell {
            args.push("--sandbox".into());
        }
        if self.await_plan {
            args.push("--await-plan".into());
            return args;
        }
        args.push("--".into());
        args.push(self.program.clone().into_os_string());
        args.extend(self.args.iter().cloned());
        args
    }

    /// The plan as the NUL-separated bytes a shell reads on stdin.
    pub fn to_stdin_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for arg in self.to_args() {
            bytes.extend_from_slice(arg.as_bytes());
            bytes.push(0);
        }
        bytes
    }

    /// Parses the wrapper's arguments (everything after argv\[0\]).
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, String> {
        let mut plan = WrapperPlan::default();
        let mut args = args.into_iter();
        loop {
            let Some(flag) = args.next() else {
                return if plan.await_plan { Ok(plan) } else { Err("missing `-- PROGRAM`".into()) };
            };
            let mut value = |flag: &str| args.next().ok_or(format!("{flag} needs a value"));
            let number = |raw: OsString, flag: &str| -> Result<u64, String> {
                raw.to_str().and_then(|text| text.parse().ok()).ok_or(format!("{flag} needs a number"))
            };
            match flag.to_str() {
                Some("--") => break,
                Some("--await-plan") => plan.await_plan = true,
                Some("--sandbox") => plan.sandbox_shell = true,
                Some("--exec-only-runtime") => {
                    plan.sandbox.get_or_insert_with(Default::default).exec_only_runtime = true
                }
                Some("--root") => plan.sandbox.get_or_insert_with(Default::default).root = value("--root")?.into(),
                Some("--bind") => {
                    let source = value("--bind")?.into();
                    let target = value("--bind")?.into();
                    plan.sandbox.get_or_insert_with(Default::default).binds.push((source, target));
                }
                Some("--bind-rw") => {
                    let source = value("--bind-rw")?.into();
                    let target = value("--bind-rw")?.into();
                    plan.sandbox.get_or_insert_with(Default::default).writable_binds.push((source, target));
                }
                Some("--umask") => {
                    let mask = number(value("--umask")?, "--umask")?;
                    let mask = u32::try_from(mask).ok().filter(|mask| *mask <= 0o777).ok_or("--umask is 0 to 511")?;
                    plan.sandbox.get_or_insert_with(Default::default).umask = Some(mask);
                }
                Some("--tmp-bytes") => {
                    let bytes = number(value("--tmp-bytes")?, "--tmp-bytes")?;
                    plan.sandbox.get_or_insert_with(Default::default).tmp_bytes = bytes;
                }
                Some(flag @ ("--uid" | "--gid")) => {
                    let id = u32::try_from(number(value(flag)?, flag)?).map_err(|_| format!("{flag} is too large"))?;
                    let steps = plan.sandbox.get_or_insert_with(Default::default);
                    if flag == "--uid" {
                        steps.uid = id;
                    } else {
                        steps.gid = id;
                    }
                }
                Some("--netns") => {
                    plan.sandbox.get_or_insert_with(Default::default).network_namespace = value("--netns")?.into()
                }
                Some("--join-cgroup") => plan.cgroup_procs_files.push(value("--join-cgroup")?.into()),
                Some("--chdir") => plan.working_dir = Some(value("--chdir")?.into()),
                Some("--env") => plan.env.get_or_insert_with(Vec::new).push(value("--env")?),
                Some("--parent") => {
                    let raw = value("--parent")?;
                    let pid = raw.to_str().and_then(|s| s.parse().ok()).ok_or("--parent needs a pid")?;
                    plan.expected_parent = Some(pid);
                }
                Some("--rlimit") => {
                    let raw = value("--rlimit")?;
                    let raw = raw.to_str().ok_or("--rlimit needs NAME=VALUE")?;
                    let (name, number) = raw.split_once('=').ok_or("--rlimit needs NAME=VALUE")?;
                    let name = RlimitName::parse(name).ok_or(format!("unknown rlimit {name}"))?;
                    let number = number.parse().map_err(|_| format!("bad rlimit value {number}"))?;
                    plan.rlimits.push((name, number));
                }
                _ => return Err(format!("unknown argument {}", flag.to_string_lossy())),
            }
        }
        plan.program = args.next().ok_or("missing PROGRAM after --")?.into();
        plan.args = args.collect();
        Ok(plan)
    }

    /// Parses a plan received on stdin.
    pub fn parse_stdin_bytes(bytes: &[u8]) -> Result<Self, String> {
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        let plan = Self::parse(bytes.split(|&byte| byte == 0).map(|arg| OsString::from_vec(arg.to_vec())))?;
        if plan.await_plan || plan.sandbox_shell || !plan.cgroup_procs_files.is_empty() {
            return Err("a plan sent on stdin cannot join cgroups, create namespaces or await another plan".into());
        }
        Ok(plan)
    }
}

/// Applies the plan to the current process and execs the program; returns only on failure.
pub fn apply_and_exec(plan: WrapperPlan) -> String {
    if let Err(error) = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL) {
        return format!("set parent-death signal: {error}");
    }
    // The parent may have died between our spawn and the prctl above; then no signal will come.
    if let Some(expected) = plan.expected_parent {
        if nix::unistd::getppid().as_raw() != expected {
            return "parent exited before the worker started".to_string();
        }
    }
    let own_pid = std::process::id().to_string();
    for file in &plan.cgroup_procs_files {
        if let Err(error) = std::fs::write(file, &own_pid) {
            return format!("join cgroup {}: {error}", file.display());
        }
    }
    // Ahead of time: namespaces, the fork into them, and the filter compiled while nobody waits.
    let policy = if plan.sandbox_shell {
        if let Err(error) = enter::enter_namespaces() {
            return error;
        }
        match SyscallPolicy::build() {
            Ok(policy) => Some(policy),
            Err(error) => return error.to_string(),
        }
    } else {
        None
    };
    let plan = if plan.await_plan {
        match receive_plan() {
            Ok(Some(received)) => received,
            // The pool closed the pipe without a plan: this shell is not needed any more.
            Ok(None) => std::process::exit(0),
            Err(error) => return error,
        }
    } else {
        plan
    };
    match (&plan.sandbox, &policy) {
        (Some(steps), Some(_)) => {
            let entered = enter::join_network(&steps.network_namespace)
                .and_then(|()| enter::enter_root(steps))
                .and_then(|()| enter::refuse_executable_memfds());
            if let Err(error) = entered {
                return error;
            }
        }
        (None, None) => {}
        (Some(_), None) => return "sandbox steps need a sandboxed shell (--sandbox)".to_string(),
        (None, Some(_)) => return "a sandboxed shell refuses to launch without sandbox steps".to_string(),
    }
    for (name, value) in &plan.rlimits {
        if let Err(error) = setrlimit(name.resource(), *value, *value) {
            return format!("set rlimit {}={value}: {error}", name.as_flag());
        }
    }
    if let Some(dir) = &plan.working_dir {
        if let Err(error) = std::env::set_current_dir(dir) {
            return format!("change directory to {}: {error}", dir.display());
        }
    }
    if let Some(steps) = &plan.sandbox {
        let handed_over = enter::hand_over_pipes(steps.uid, steps.gid);
        if let Err(error) = handed_over.and_then(|()| enter::drop_identity(steps.uid, steps.gid)) {
            return error;
        }
        if steps.exec_only_runtime {
            if let Err(error) = crate::sandbox::exec_allowlist::allow_only(&plan.program) {
                return error;
            }
        }
        if let Some(mask) = steps.umask {
            nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask as libc::mode_t));
        }
    }
    let to_c = |bytes: &[u8]| CString::new(bytes).map_err(|_| "argument contains a NUL byte".to_string());
    let program = match to_c(plan.program.as_os_str().as_bytes()) {
        Ok(program) => program,
        Err(error) => return error,
    };
    let mut argv = vec![program.clone()];
    for arg in &plan.args {
        match to_c(arg.as_bytes()) {
            Ok(arg) => argv.push(arg),
            Err(error) => return error,
        }
    }
    let env: Vec<CString> = match &plan.env {
        Some(variables) => match variables.iter().map(|variable| to_c(variable.as_bytes())).collect() {
            Ok(env) => env,
            Err(error) => return error,
        },
        None => std::env::vars_os()
            .filter_map(|(key, value)| {
                let mut entry = key.into_vec();
                entry.push(b'=');
                entry.extend(value.into_vec());
                CString::new(entry).ok()
            })
            .collect(),
    };
    // The Rust runtime ignores SIGPIPE at start-up and ignored signals survive exec; runtimes expect
    // the default disposition.
    // SAFETY: restoring a default disposition installs no handler; this process is single-threaded.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Nothing the server was started with reaches the runtime (a file, a pipe, a socket).
    if let Err(error) = close_inherited_descriptors() {
        return error;
    }
    // Last: from here on the kernel refuses what the policy lists, to this process and the runtime.
    if let Some(policy) = &policy {
        if let Err(error) = policy.install() {
            return error;
        }
    }
    match nix::unistd::execve(&program, &argv, &env) {
        Ok(never) => match never {},
        Err(error) => format!("exec {}: {error}", plan.program.display()),
    }
}

/// The descriptors a runtime keeps: stdin, stdout, stderr and the protocol's request and response
/// pipes (`protocol::REQUEST_FD`, `RESPONSE_FD`).
pub const KEPT_DESCRIPTORS: i32 = 5;

/// Closes every descriptor from [`KEPT_DESCRIPTORS`] up. The server's own files are opened
/// close-on-exec, but what it inherited from whoever started it need not be (a service manager's
/// or a shell's `7< file`), and `posix_spawn` passes those on to every worker.
pub fn close_inherited_descriptors() -> Result<(), String> {
    // SAFETY: close_range takes plain integers and touches only this process's descriptor table.
    let closed =
        unsafe { libc::syscall(libc::SYS_close_range, KEPT_DESCRIPTORS as libc::c_uint, libc::c_uint::MAX, 0) };
    if closed == 0 {
        return Ok(());
    }
    // Kernels before 5.9: close what the process's descriptor directory lists.
    let open = open_descriptors().map_err(|error| format!("list inherited descriptors: {error}"))?;
    for fd in open.into_iter().filter(|fd| *fd >= KEPT_DESCRIPTORS) {
        // SAFETY: closing a descriptor this single-threaded process is about to give up anyway
        // (the listing's own, already closed, answers EBADF, which is fine).
        unsafe {
            libc::close(fd);
        }
    }
    Ok(())
}

/// The descriptors this process holds (`/proc/self/fd`; the listing's own is among them, closed
/// by the time this returns).
pub fn open_descriptors() -> std::io::Result<Vec<i32>> {
    let listed = std::fs::read_dir("/proc/self/fd")?;
    Ok(listed.flatten().filter_map(|entry| entry.file_name().to_str()?.parse().ok()).collect())
}

/// Reads a shell's plan from stdin until the pool closes the pipe, then points stdin at /dev/null.
fn receive_plan() -> Result<Option<WrapperPlan>, String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_PLAN_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| format!("read the plan from stdin: {error}"))?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.len() > MAX_PLAN_BYTES {
        return Err(format!("the plan is larger than {MAX_PLAN_BYTES} bytes"));
    }
    let null = std::fs::File::open("/dev/null").map_err(|error| format!("open /dev/null: {error}"))?;
    nix::unistd::dup2_stdin(null).map_err(|error| format!("point stdin at /dev/null: {error}"))?;
    WrapperPlan::parse_stdin_bytes(&bytes).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_round_trips_through_its_command_line() {
        let plan = WrapperPlan {
            cgroup_procs_files: vec!["/sys/fs/cgroup/memory/x/cgroup.procs".into()],
            rlimits: vec![(RlimitName::Data, 1 << 27), (RlimitName::CoreSize, 0)],
            working_dir: Some("/srv/fn".into()),
            expected_parent: Some(42),
            await_plan: false,
            sandbox_shell: false,
            sandbox: Some(SandboxSteps {
                root: "/state/sandbox-roots/node".into(),
                binds: vec![("/data/fn one".into(), "/fn".into()), ("/ids/2.passwd".into(), "/etc/passwd".into())],
                writable_binds: vec![("/state/out".into(), "/containerpub/out".into())],
                umask: Some(0),
                tmp_bytes: 1 << 26,
                uid: 200_002,
                gid: 200_002,
                network_namespace: "/proc/1/fd/7".into(),
                exec_only_runtime: true,
            }),
            env: Some(vec!["A=1".into(), "B=two words".into()]),
            program: "/usr/bin/node".into(),
            args: vec!["adapter.js".into(), "--flag".into()],
        };
        assert_eq!(WrapperPlan::parse(plan.to_args()).unwrap(), plan);
    }

    #[test]
    fn a_shell_takes_its_program_from_stdin() {
        let shell = WrapperPlan {
            cgroup_procs_files: vec!["/cg/cgroup.procs".into()],
            expected_parent: Some(7),
            await_plan: true,
            sandbox_shell: true,
            ..Default::default()
        };
        assert_eq!(WrapperPlan::parse(shell.to_args()).unwrap(), shell);
        let launch = WrapperPlan {
            rlimits: vec![(RlimitName::OpenFiles, 64)],
            working_dir: Some("/fn".into()),
            env: Some(vec!["FUNCTION_INPUT={\"a\":\"b c\"}".into()]),
            program: "/usr/bin/python3".into(),
            args: vec!["-B".into(), "main.py".into()],
            ..Default::default()
        };
        assert_eq!(WrapperPlan::parse_stdin_bytes(&launch.to_stdin_bytes()).unwrap(), launch);
        let sneaky = WrapperPlan { cgroup_procs_files: vec!["/elsewhere".into()], ..launch };
        assert!(WrapperPlan::parse_stdin_bytes(&sneaky.to_stdin_bytes()).unwrap_err().contains("cannot join"));
    }

    #[test]
    fn bad_command_lines_are_refused_with_a_reason() {
        let parse = |args: &[&str]| WrapperPlan::parse(args.iter().map(OsString::from));
        assert!(parse(&["--rlimit", "stack=1", "--", "/bin/true"]).unwrap_err().contains("unknown rlimit"));
        assert!(parse(&["--chdir"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--"]).unwrap_err().contains("missing PROGRAM"));
        assert!(parse(&["/bin/true"]).unwrap_err().contains("unknown argument"));
        assert!(parse(&[]).unwrap_err().contains("missing `-- PROGRAM`"));
    }
}
