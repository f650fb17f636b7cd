//! The Dart executable behind the `dart` found on `PATH`.
//!
//! A Dart SDK's `bin/dart` is an ELF executable (since SDK 3.10 an AOT runtime that runs the
//! `dartdev` snapshot; before, the VM itself). What `PATH` finds is often something else:
//!
//! - a symbolic link: Debian's `/usr/bin/dart` → `/usr/lib/dart/bin/dart`;
//! - Flutter's `bin/dart`: a shell script that checks Flutter's cache and `exec`s
//!   `bin/cache/dart-sdk/bin/dart`;
//! - a version manager's shim: asdf's is a shell script, mise's a link to mise's own executable;
//!   each `exec`s the SDK it chose.
//!
//! The server needs the real executable. The workers' root is built from its program loader and
//! libraries (a script has neither, so every worker failed with `failed to open
//! "/lib64/ld-linux-x86-64.so.2"`), and `pub get` and `compile exe` run it directly, with a
//! worker's environment, in which a shim would find no configuration (no `HOME` of the operator's).
//!
//! So links are followed, and an ELF executable named `dart` is taken as it is. Anything else is
//! run once with `--version` under `ptrace`: it stops itself before the first `exec` (so nothing
//! runs untraced), and when it exits, after every `exec` the wrapper chain made in that process,
//! `/proc/PID/exe` names the executable it ended as. That must be an ELF executable named `dart`;
//! otherwise the server refuses to start and says what it found.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::ptrace;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// How long a wrapper may take to reach the Dart executable (Flutter checks its cache first).
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// The Dart executable that `found` (the `dart` on `PATH`) is, or runs.
pub fn resolve(found: &Path) -> Result<PathBuf, String> {
    let real = std::fs::canonicalize(found).map_err(|error| format!("resolve {}: {error}", found.display()))?;
    if is_dart_executable(&real) {
        return Ok(real);
    }
    let ended_as = executable_after_execs(found)?;
    if is_dart_executable(&ended_as) {
        return Ok(ended_as);
    }
    Err(format!(
        "the dart on PATH ({}) is {}, and running it ended in {} ({}), not in a Dart SDK's bin/dart; put the SDK's bin/ directory first on the server's PATH (for Flutter: FLUTTER_ROOT/bin/cache/dart-sdk/bin), or take dart off its PATH to run without Dart functions",
        found.display(),
        describe(&real),
        ended_as.display(),
        describe(&ended_as),
    ))
}

/// An ELF executable whose file is named `dart`.
fn is_dart_executable(path: &Path) -> bool {
    path.file_name().is_some_and(|name| name == "dart")
        && super::is_executable_file(path)
        && head(path).is_some_and(|head| head.starts_with(b"\x7fELF"))
}

/// The first bytes of a file: enough for its magic number or its `#!` line.
fn head(path: &Path) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    std::fs::File::open(path).and_then(|file| file.take(128).read_to_end(&mut head)).ok()?;
    Some(head)
}

/// What a file is, in words for the refusal: `a script (#!/usr/bin/env bash)`, `an ELF executable`.
fn describe(path: &Path) -> String {
    let Some(head) = head(path) else { return "unreadable".into() };
    if head.starts_with(b"#!") {
        let line = String::from_utf8_lossy(&head).lines().next().unwrap_or_default().to_string();
        return format!("a script ({line})");
    }
    if head.starts_with(b"\x7fELF") {
        return "an ELF executable".into();
    }
    "neither a script nor an ELF executable".into()
}

/// Runs `found --version` traced and returns the executable the process was when it exited.
fn executable_after_execs(found: &Path) -> Result<PathBuf, String> {
    let failed = |what: &str, error: &dyn std::fmt::Display| {
        format!("run {} --version traced: {what}: {error}", found.display())
    };
    // `sh` stops itself, and only once it is traced does it `exec` the wrapper: no `exec` is missed.
    let child = std::process::Command::new("/bin/sh")
        .args(["-c", "kill -STOP $$ && exec \"$0\" --version"])
        .arg(found)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|error| failed("start /bin/sh", &error))?;
    // Reaped below with waitpid; `Child` never waits, so it is dropped right away.
    let pid = Pid::from_raw(child.id() as i32);
    drop(child);
    let traced = trace_until_exit(pid);
    if traced.is_err() {
        let _ = kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, Some(WaitPidFlag::__WALL));
    }
    traced.map_err(|error| failed("trace it", &error))
}

fn trace_until_exit(pid: Pid) -> Result<PathBuf, String> {
    match waitpid(pid, Some(WaitPidFlag::WUNTRACED)).map_err(|error| error.to_string())? {
        WaitStatus::Stopped(_, Signal::SIGSTOP) => {}
        other => return Err(format!("the shell did not stop itself: {other:?}")),
    }
    let options = ptrace::Options::PTRACE_O_TRACEEXIT | ptrace::Options::PTRACE_O_EXITKILL;
    ptrace::seize(pid, options).map_err(|error| format!("ptrace: {error}"))?;
    kill(pid, Signal::SIGCONT).map_err(|error| error.to_string())?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let mut ended_as = None;
    loop {
        let status =
            waitpid(pid, Some(WaitPidFlag::__WALL | WaitPidFlag::WNOHANG)).map_err(|error| error.to_string())?;
        match status {
            WaitStatus::StillAlive => {
                if Instant::now() > deadline {
                    return Err(format!("it did not finish within {PROBE_TIMEOUT:?}"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            WaitStatus::PtraceEvent(_, _, event) => {
                // At the exit stop the process still has its memory, so its `exe` link still
                // names what it ran last.
                if event == ptrace::Event::PTRACE_EVENT_EXIT as i32 {
                    ended_as = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
                }
                let _ = ptrace::cont(pid, None);
            }
            // A signal on its way to the process: deliver it (a stop signal would only stop it again).
            WaitStatus::Stopped(_, signal) => {
                let deliver = (!matches!(signal, Signal::SIGSTOP | Signal::SIGTSTP)).then_some(signal);
                let _ = ptrace::cont(pid, deliver);
            }
            WaitStatus::Exited(..) | WaitStatus::Signaled(..) => {
                return ended_as.ok_or_else(|| "it exited before its executable could be read".to_string());
            }
            _ => {
                let _ = ptrace::cont(pid, None);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_script_that_execs_an_elf_not_named_dart_is_refused_naming_both() {
        let dir = tempfile::tempdir().unwrap();
        let shim = script(dir.path(), "bin/dart", "#!/bin/sh\nexec /bin/true \"$@\"\n");
        let error = resolve(&shim).unwrap_err();
        assert!(error.contains(&format!("the dart on PATH ({})", shim.display())), "{error}");
        assert!(error.contains("is a script (#!/bin/sh)"), "{error}");
        let truth = std::fs::canonicalize("/bin/true").unwrap();
        assert!(error.contains(&format!("ended in {} (an ELF executable)", truth.display())), "{error}");
    }

    #[test]
    fn the_executable_a_wrapper_chain_ends_in_is_found_after_every_exec() {
        let dir = tempfile::tempdir().unwrap();
        // Two scripts, each `exec`ing the next, ending in an ELF executable: the same process
        // throughout, as with Flutter's bin/dart or an asdf shim.
        let last = script(dir.path(), "inner/sh-again", "#!/bin/sh\nexec /bin/true\n");
        let first = script(dir.path(), "bin/dart", &format!("#!/bin/sh\nexec {} \"$@\"\n", last.display()));
        let ended_as = executable_after_execs(&first).unwrap();
        assert_eq!(ended_as, std::fs::canonicalize("/bin/true").unwrap());
    }
}
