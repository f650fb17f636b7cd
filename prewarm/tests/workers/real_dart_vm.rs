//! A real Dart VM in the sandbox: the Dart 3.13.7 AOT runtime and Dart Sass snapshot of npm's
//! `sass-embedded-linux-x64` (`stand_in::real_dart`), assembled as `dart compile exe` would, run
//! through the project's own spawn path (the spawner thread, the exec wrapper, a function's
//! sandbox: its uid, namespaces, read-only root, Landlock, seccomp) as a Dart function's worker
//! is: `/containerpub/build/worker`, in the Dart template built from the `dart` found on `PATH`.
//!
//! What runs here is Dart Sass, not our adapter (nothing here compiles Dart source): it proves
//! what the VM does inside our confinement with the same `dart:io` calls the adapter makes
//! (`File('/dev/fd/3')` opened by path, `/dev/fd/4` written), isolates and timers, under a
//! worker's memory cap, and that no system call the VM makes is refused.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prewarm::exec_wrapper::{RlimitName, WrapperPlan};
use prewarm::limits::{detect_enforcement, SpareGroups, WorkerLimits};
use prewarm::sandbox::enter::SandboxSteps;
use prewarm::sandbox::network::NetworkPolicy;
use prewarm::sandbox::rootfs::BUILD_DIR;
use prewarm::sandbox::Sandbox;
use prewarm::shells::{Launch, ShellPool};
use prewarm::spawn::{create_pipe, ExitStatus, SpawnCommand, Spawner};
use prewarm::{LimitsHost, Runtime, RuntimeInstall, SandboxConfig};

use crate::fixture::{skip, wrapper};
use crate::stand_in::real_dart::RealDart;

/// A worker's memory cap in these runs (the outside check used 128 MB too).
const MEMORY: u64 = 128 << 20;
const LIMITS: WorkerLimits = WorkerLimits { memory_bytes: MEMORY, max_pids: 64, max_open_files: 256 };
const STYLESHEET: &str = "$accent: #c0ffee;\na { b { color: $accent; } }\n";
const COMPILED: &str = "a b {\n  color: #c0ffee;\n}";

/// The Dart template of a sandbox built from the `dart` on `search_path`, and a function whose
/// build holds the real Dart executable as its `worker`.
struct ConfinedDart {
    steps: SandboxSteps,
    spawner: Spawner,
    groups: Arc<SpareGroups>,
    shells: Arc<ShellPool>,
    install: RuntimeInstall,
    _network: prewarm::sandbox::network::OwnNetwork,
    _sandbox: Sandbox,
    _state: tempfile::TempDir,
}

/// What a run left: its exit, its output on each pipe.
#[derive(Debug)]
struct Ran {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: String,
    response: Vec<u8>,
}

impl ConfinedDart {
    /// `None` (after a `skipped:` line) when the sandbox cannot start here: it needs root.
    fn start(search_path: &Path, real: &RealDart, instance: u64) -> Option<ConfinedDart> {
        if !nix::unistd::geteuid().is_root() {
            skip("the real Dart VM runs in the sandbox, which needs root");
            return None;
        }
        let state = tempfile::tempdir().unwrap();
        let install = RuntimeInstall::discover(Some(search_path.as_os_str()), &state.path().join("adapters")).unwrap();
        install.executable(Runtime::Dart).expect("a Dart executable on the search path");
        let config = SandboxConfig { default_network: NetworkPolicy::None, ..Default::default() };
        let (sandbox, setup) = Sandbox::start(config, state.path(), &install, None, instance).unwrap();
        let build = state.path().join("build");
        let function = state.path().join("function");
        std::fs::create_dir_all(&build).unwrap();
        std::fs::create_dir_all(&function).unwrap();
        real.assemble_sass(&build.join("worker"));
        prewarm::sandbox::rootfs::make_world_readable(state.path()).unwrap();
        let uid = sandbox.unallocated_uid().unwrap();
        let launch = sandbox.launch(Runtime::Dart, &function, uid, NetworkPolicy::None, 16 << 20, None).unwrap();
        // The function's own loopback namespace lives as long as this handle: workers join it by path.
        let (mut steps, network) = (launch.steps, launch.network);
        steps.binds.push((build, PathBuf::from(BUILD_DIR)));
        let spawner = Spawner::start(Some(setup)).unwrap();
        let groups = SpareGroups::new(detect_enforcement(&LimitsHost::default()).enforcement, 2);
        let shells = ShellPool::new(spawner.clone(), groups.clone(), wrapper(), 0, true);
        Some(ConfinedDart {
            steps,
            spawner,
            groups,
            shells,
            install,
            _network: network,
            _sandbox: sandbox,
            _state: state,
        })
    }

    fn program() -> PathBuf {
        Path::new(BUILD_DIR).join("worker")
    }

    /// As a worker starts: a spare shell, then the launch plan. `request` goes to fd 3.
    async fn run_as_worker(&self, args: &[&str], request: &[u8]) -> Ran {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let launch = Launch {
            program: &Self::program(),
            args: &args,
            env: &[("LANG".into(), "C.UTF-8".into())],
            directory: Path::new("/fn"),
            limits: LIMITS,
            sandbox: Some(&self.steps),
        };
        let mut launched = self.shells.take().await.unwrap().launch(launch).await.unwrap();
        let pipes = launched.pipes;
        let writer = write_then_close(pipes.requests, request.to_vec());
        let (response, stdout, stderr) = (read_all(pipes.responses), read_all(pipes.stdout), read_all(pipes.stderr));
        let status = launched.process.wait().await;
        writer.join().unwrap();
        let confinement = launched.confinement;
        tokio::task::spawn_blocking(move || confinement.release()).await.unwrap();
        Ran {
            status,
            response: response.join().unwrap(),
            stdout: stdout.join().unwrap(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
        }
    }

    /// The same wrapper and sandbox steps, the plan on the command line rather than sent to a
    /// shell, so the VM keeps a stdin of ours (the embedded Sass protocol's channel); the worker's
    /// rlimit on its data segment on top of the cgroup, where there is one.
    async fn run_with_stdin(&self, args: &[&str], packet: &[u8]) -> Ran {
        let groups = self.groups.clone();
        let confinement = tokio::task::spawn_blocking(move || groups.confine(LIMITS)).await.unwrap().unwrap();
        let mut rlimits = confinement.rlimits(LIMITS);
        if !rlimits.iter().any(|(name, _)| *name == RlimitName::Data) {
            rlimits.push((RlimitName::Data, MEMORY));
        }
        let (stdin_read, stdin) = create_pipe().unwrap();
        let (stdout, stdout_write) = create_pipe().unwrap();
        let (stderr, stderr_write) = create_pipe().unwrap();
        let (request_read, requests) = create_pipe().unwrap();
        let (responses, response_write) = create_pipe().unwrap();
        let plan = WrapperPlan {
            cgroup_procs_files: confinement.procs_files(),
            rlimits,
            working_dir: Some("/fn".into()),
            expected_parent: Some(std::process::id() as i32),
            sandbox_shell: true,
            sandbox: Some(self.steps.clone()),
            env: Some(vec!["LANG=C.UTF-8".into()]),
            program: Self::program(),
            args: args.iter().map(Into::into).collect(),
            ..Default::default()
        };
        let command = SpawnCommand {
            wrapper: wrapper(),
            plan,
            env: Vec::new(),
            fds: vec![(stdin_read, 0), (stdout_write, 1), (stderr_write, 2), (request_read, 3), (response_write, 4)],
        };
        let mut process = self.spawner.spawn(command).await.unwrap();
        drop(requests);
        // The compiler answers while its stdin is open, and exits once it is closed.
        let mut stdin = std::fs::File::from(stdin);
        stdin.write_all(packet).unwrap();
        let (reply, stdout_rest) = tokio::task::spawn_blocking(move || {
            let mut stdout = std::fs::File::from(stdout);
            let reply = read_packet(&mut stdout);
            drop(stdin);
            let mut rest = Vec::new();
            stdout.read_to_end(&mut rest).unwrap();
            (reply, rest)
        })
        .await
        .unwrap();
        let (response, stderr) = (read_all(responses), read_all(stderr));
        let status = process.wait().await;
        tokio::task::spawn_blocking(move || confinement.release()).await.unwrap();
        Ran {
            status,
            stdout: [reply, stdout_rest].concat(),
            stderr: String::from_utf8_lossy(&stderr.join().unwrap()).into_owned(),
            response: response.join().unwrap(),
        }
    }
}

fn write_then_close(pipe: OwnedFd, bytes: Vec<u8>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = std::fs::File::from(pipe).write_all(&bytes);
    })
}

fn read_all(pipe: OwnedFd) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = std::fs::File::from(pipe).read_to_end(&mut bytes);
        bytes
    })
}

/// An SDK directory whose `bin/dart` is the real Dart runtime: what a Dart SDK's `bin/dart` is to
/// the server (an ELF executable named `dart`, printing `Dart SDK version: …`).
fn sdk_of(real: &RealDart, root: &Path) -> PathBuf {
    let bin = root.join("dart-sdk/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(&real.runtime, bin.join("dart")).unwrap();
    bin
}

/// One packet of the embedded Sass protocol: varint length, varint compilation id, then an
/// `InboundMessage` whose `compile_request` (2) holds a `StringInput` (2) with `source` (1).
fn compile_request(id: usize, source: &str) -> Vec<u8> {
    fn field(tag: u8, bytes: &[u8]) -> Vec<u8> {
        [vec![tag], varint(bytes.len()), bytes.to_vec()].concat()
    }
    let message = field(0x12, &field(0x12, &field(0x0a, source.as_bytes())));
    let body = [varint(id), message].concat();
    [varint(body.len()), body].concat()
}

fn varint(mut value: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    loop {
        let low = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            bytes.push(low);
            return bytes;
        }
        bytes.push(low | 0x80);
    }
}

/// Reads one length-prefixed packet (its bytes, prefix included).
fn read_packet(from: &mut impl Read) -> Vec<u8> {
    let mut packet = Vec::new();
    let (mut length, mut shift) = (0usize, 0);
    loop {
        let mut byte = [0u8];
        if from.read(&mut byte).unwrap_or(0) == 0 {
            return packet;
        }
        packet.push(byte[0]);
        length |= usize::from(byte[0] & 0x7f) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; length];
    if from.read_exact(&mut body).is_ok() {
        packet.extend(body);
    }
    packet
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle.as_bytes())
}

/// The Sass CLI takes file paths: it compiles the stylesheet it reads from `/dev/fd/3` (the
/// request pipe) and writes the CSS to `/dev/fd/4` (the reply pipe), opening both by path with
/// `dart:io`, as the Dart adapter does.
async fn fd_run(confined: &ConfinedDart) {
    let ran = confined.run_as_worker(&["--no-source-map", "/dev/fd/3", "/dev/fd/4"], STYLESHEET.as_bytes()).await;
    assert_eq!(ran.status, ExitStatus::Exited(0), "{ran:?}");
    assert!(contains(&ran.response, COMPILED), "{:?} / {}", String::from_utf8_lossy(&ran.response), ran.stderr);
}

/// `--embedded`: a compile request on stdin, each compilation in an isolate of its own.
async fn embedded_run(confined: &ConfinedDart) {
    let ran = confined.run_with_stdin(&["--embedded"], &compile_request(1, STYLESHEET)).await;
    assert_eq!(ran.status, ExitStatus::Exited(0), "{ran:?}");
    assert!(contains(&ran.stdout, COMPILED), "{:?} / {}", String::from_utf8_lossy(&ran.stdout), ran.stderr);
}

#[tokio::test]
async fn the_real_vm_opens_the_protocol_pipes_by_path_as_the_functions_uid() {
    let Some(real) = RealDart::from_env("the_real_vm_opens_the_protocol_pipes_by_path_as_the_functions_uid") else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let Some(confined) = ConfinedDart::start(&sdk_of(&real, root.path()), &real, 910) else { return };
    assert!(confined.steps.uid != 0);
    fd_run(&confined).await;
}

#[tokio::test]
async fn the_real_vm_runs_isolates_and_timers_under_the_memory_cap() {
    let Some(real) = RealDart::from_env("the_real_vm_runs_isolates_and_timers_under_the_memory_cap") else { return };
    let root = tempfile::tempdir().unwrap();
    let Some(confined) = ConfinedDart::start(&sdk_of(&real, root.path()), &real, 911) else { return };
    embedded_run(&confined).await;
    // Two compilations at once on one compiler, each in an isolate of its own.
    let two = [compile_request(1, "x { y: 1 }"), compile_request(2, STYLESHEET)].concat();
    let ran = confined.run_with_stdin(&["--embedded"], &two).await;
    assert_eq!(ran.status, ExitStatus::Exited(0), "{ran:?}");
    assert!(contains(&ran.stdout, "x {\n  y: 1;\n}") || contains(&ran.stdout, COMPILED), "{ran:?}");
}

#[tokio::test]
async fn a_flutter_style_dart_script_resolves_to_the_vm_it_runs() {
    let Some(real) = RealDart::from_env("a_flutter_style_dart_script_resolves_to_the_vm_it_runs") else { return };
    // Flutter's layout: bin/dart is a shell script (it checks the cache, then `exec`s the SDK's).
    let flutter = tempfile::tempdir().unwrap();
    let sdk_bin = sdk_of(&real, &flutter.path().join("bin/cache"));
    let script = flutter.path().join("bin/dart");
    std::fs::write(
        &script,
        "#!/usr/bin/env bash\n# Flutter's bin/dart, in short: find the cached SDK, then run its dart.\nset -e\nFLUTTER_ROOT=\"$(cd \"$(dirname \"${BASH_SOURCE[0]}\")/..\" && pwd)\"\n[ -x \"$FLUTTER_ROOT/bin/cache/dart-sdk/bin/dart\" ] || { echo 'Downloading Dart SDK…' >&2; exit 1; }\nexec \"$FLUTTER_ROOT/bin/cache/dart-sdk/bin/dart\" \"$@\"\n",
    )
    .unwrap();
    crate::stand_in::make_executable(&script);
    let state = tempfile::tempdir().unwrap();
    let install = RuntimeInstall::discover(Some(script.parent().unwrap().as_os_str()), state.path()).unwrap();
    let resolved = install.executable(Runtime::Dart).unwrap();
    assert_eq!(resolved, std::fs::canonicalize(sdk_bin.join("dart")).unwrap());
    assert!(install.dart_version().unwrap().starts_with("Dart SDK version: 3."), "{:?}", install.dart_version());
    // And the template made from it runs the worker: before, a script gave a root with no loader.
    let Some(confined) = ConfinedDart::start(script.parent().unwrap(), &real, 912) else { return };
    assert_eq!(confined.install.executable(Runtime::Dart).unwrap(), resolved);
    fd_run(&confined).await;
}

/// The layouts a `dart` on PATH comes in, each resolved to the SDK's executable: a tarball's
/// `dart-sdk/bin/dart` as it is, Debian's `/usr/bin/dart` link, an asdf-style shim (a script that
/// runs another script that `exec`s the SDK's), a mise-style shim (a link named `dart` to the
/// version manager's own ELF executable, which `exec`s the SDK's).
#[test]
fn every_sdk_layout_resolves_to_the_vm_it_runs() {
    let Some(real) = RealDart::from_env("every_sdk_layout_resolves_to_the_vm_it_runs") else { return };
    let root = tempfile::tempdir().unwrap();
    let sdk_bin = sdk_of(&real, &root.path().join("usr/lib"));
    let vm = std::fs::canonicalize(sdk_bin.join("dart")).unwrap();
    let write_script = |path: PathBuf, text: String| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        crate::stand_in::make_executable(&path);
    };
    // Debian: /usr/bin/dart → ../lib/dart-sdk/bin/dart.
    std::fs::create_dir_all(root.path().join("usr/bin")).unwrap();
    std::os::unix::fs::symlink("../lib/dart-sdk/bin/dart", root.path().join("usr/bin/dart")).unwrap();
    // asdf: the shim runs `asdf exec dart`, which finds the version and `exec`s it.
    write_script(
        root.path().join("asdf/bin/asdf"),
        format!("#!/bin/sh\n[ \"$1\" = exec ] && shift 2 && exec {} \"$@\"\nexit 1\n", vm.display()),
    );
    write_script(
        root.path().join("asdf/shims/dart"),
        format!("#!/usr/bin/env bash\nexec {} exec \"dart\" \"$@\"\n", root.path().join("asdf/bin/asdf").display()),
    );
    // mise: shims are links to mise's own executable, which `exec`s the chosen tool.
    let mise_bin = root.path().join("mise/bin");
    crate::stand_in::install(&root.path().join("mise"));
    std::fs::rename(mise_bin.join("dart"), mise_bin.join("mise")).unwrap();
    write_script(mise_bin.join("dart.sh"), format!("#!/bin/sh\nexec {} \"$@\"\n", vm.display()));
    std::fs::create_dir_all(root.path().join("mise/shims")).unwrap();
    std::os::unix::fs::symlink(mise_bin.join("mise"), root.path().join("mise/shims/dart")).unwrap();

    for search in [sdk_bin, root.path().join("usr/bin"), root.path().join("asdf/shims"), root.path().join("mise/shims")]
    {
        let adapters = tempfile::tempdir().unwrap();
        let install = RuntimeInstall::discover(Some(search.as_os_str()), adapters.path()).unwrap();
        assert_eq!(install.executable(Runtime::Dart).unwrap(), vm, "from {}", search.display());
        assert!(
            install.dart_version().unwrap().starts_with("Dart SDK version: 3.13.7"),
            "{:?}",
            install.dart_version()
        );
    }
}

/// Both runs above, in one process, for `strace` (see the next test); not run on its own.
#[tokio::test]
#[ignore = "run under strace by the_real_vm_meets_no_refusal_but_clone3"]
async fn real_vm_runs_for_strace() {
    let real = RealDart::from_env("real_vm_runs_for_strace").expect("run with the real Dart VM");
    let root = tempfile::tempdir().unwrap();
    let confined = ConfinedDart::start(&sdk_of(&real, root.path()), &real, 913).expect("root");
    fd_run(&confined).await;
    embedded_run(&confined).await;
}

#[test]
fn the_real_vm_meets_no_refusal_but_clone3() {
    let Some(_) = RealDart::from_env("the_real_vm_meets_no_refusal_but_clone3") else { return };
    if !nix::unistd::geteuid().is_root() {
        skip("the real Dart VM runs in the sandbox, which needs root");
        return;
    }
    let Some(strace) = prewarm::runtime::find_on_path(std::env::var_os("PATH").as_deref(), "strace") else {
        skip("the_real_vm_meets_no_refusal_but_clone3: strace is not installed (apt-get install strace; scripts/test does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    // Its output is kept: the harness's own "test result" line would count twice in scripts/test.
    let traced = std::process::Command::new(strace)
        .args(["-f", "-qq", "-o"])
        .arg(&trace)
        .arg("--")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", "real_dart_vm::real_vm_runs_for_strace", "--ignored", "--test-threads=1"])
        .output()
        .unwrap();
    let output = String::from_utf8_lossy(&traced.stdout) + String::from_utf8_lossy(&traced.stderr);
    assert!(traced.status.success() && output.contains("1 passed"), "the traced runs failed:\n{output}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    let refusals = vm_refusals(&trace);
    let execs: Vec<&str> = trace.lines().filter(|line| line.contains("execve")).collect();
    assert_eq!(refusals.runs, 2, "two VM runs in the trace:\n{}", execs.join("\n"));
    assert!(refusals.threads > refusals.runs, "the VM started threads");
    assert!(
        refusals.lines.iter().all(|line| line.contains("clone3(")),
        "refused inside the VM:\n{}",
        refusals.lines.join("\n")
    );
}

#[derive(Debug, Default)]
struct VmRefusals {
    runs: usize,
    threads: usize,
    /// Every call from a VM's process or thread answered EPERM, EACCES or ENOSYS.
    lines: Vec<String>,
}

/// Reads an `strace -f` log: the processes that `execve`d the worker, from that call on, and
/// every thread or process they cloned; collects their calls refused with EPERM, EACCES or ENOSYS.
fn vm_refusals(trace: &str) -> VmRefusals {
    let mut vm = std::collections::HashSet::new();
    // An `execve` another thread interrupted in the log: `<unfinished ...>`, then its result on a
    // `<... execve resumed>` line of the same pid.
    let mut exec_pending = std::collections::HashSet::new();
    let mut found = VmRefusals::default();
    for line in trace.lines() {
        let Some((pid, call)) = line.trim_start().split_once(char::is_whitespace) else { continue };
        let Ok(pid) = pid.parse::<u32>() else { continue };
        let call = call.trim_start();
        let program = format!("execve(\"{}\"", ConfinedDart::program().display());
        if call.starts_with(&program) && call.ends_with("<unfinished ...>") {
            exec_pending.insert(pid);
            continue;
        }
        let resumed = call.starts_with("<... execve resumed>") && exec_pending.remove(&pid);
        if (resumed || call.starts_with(&program)) && call.ends_with("= 0") {
            vm.insert(pid);
            found.runs += 1;
            continue;
        }
        if !vm.contains(&pid) {
            continue;
        }
        let is_clone = ["clone(", "clone3(", "<... clone resumed>", "<... clone3 resumed>"]
            .iter()
            .any(|name| call.starts_with(name));
        if is_clone {
            if let Some(child) = call.rsplit("= ").next().and_then(|value| value.trim().parse::<u32>().ok()) {
                vm.insert(child);
                found.threads += 1;
            }
        }
        if ["= -1 EPERM", "= -1 EACCES", "= -1 ENOSYS"].iter().any(|refusal| call.contains(refusal)) {
            found.lines.push(line.to_string());
        }
    }
    found
}

#[test]
fn strace_logs_are_read_per_vm_process_and_its_threads() {
    let trace = "\
100 execve(\"/containerpub/build/worker\", [\"/containerpub/build/worker\"], 0x7ff /* 1 var */) = 0
99 setuid(0) = -1 EPERM (Operation not permitted)
100 clone3({flags=CLONE_VM|CLONE_THREAD, exit_signal=0}, 88) = -1 ENOSYS (Function not implemented)
100 clone(child_stack=0x7f, flags=CLONE_VM|CLONE_THREAD) = 101
101 openat(AT_FDCWD, \"/dev/fd/3\", O_RDONLY|O_CLOEXEC) = -1 EACCES (Permission denied)
101 read(7, 0x7f, 8) = -1 EAGAIN (Resource temporarily unavailable)
200 execve(\"/containerpub/build/worker\", [\"/containerpub/build/worker\"], 0x7ff /* 1 var */ <unfinished ...>
199 futex(0x7f, FUTEX_WAKE, 1) = 0
200 <... execve resumed>) = 0
";
    let found = vm_refusals(trace);
    assert_eq!((found.runs, found.threads), (2, 1), "an interrupted execve counts once its result shows");
    assert_eq!(found.lines.len(), 2, "{:?}", found.lines);
    assert!(found.lines[0].contains("clone3(") && found.lines[1].contains("/dev/fd/3"));
}
