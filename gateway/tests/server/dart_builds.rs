//! A Dart deploy's build steps through the real server, with the stand-in `dart` of
//! `prewarm/tests/workers/stand_in/` first on the server's PATH: commands and error mapping, and,
//! with the real Dart VM `scripts/test` fetches, a deploy whose worker is a real Dart executable.
//! No Dart source compiles here; `scripts/dart-e2e` runs the whole SDK where there is one.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{archive, code, workspace_binary, Backend, Server};

#[path = "../../../prewarm/tests/workers/stand_in/mod.rs"]
mod stand_in;

const HANDLER: &str =
    "const function = 'function';\n@function\nFuture<Map<String, dynamic>> handler(Map<String, dynamic> body) async => {};\n";

/// A stand-in SDK (version 3.5.0) with `flags` set, and the server's PATH with it first.
fn stand_in_sdk(flags: &[&str]) -> (tempfile::TempDir, String) {
    let sdk = tempfile::tempdir().unwrap();
    let bin = stand_in::install(sdk.path());
    std::fs::write(sdk.path().join("version"), "Dart SDK version: 3.5.0 (stable)\n").unwrap();
    for flag in flags {
        std::fs::write(sdk.path().join(flag), "").unwrap();
    }
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    (sdk, path)
}

#[test]
fn unresolvable_dependencies_answer_422_with_pubs_message() {
    let (sdk, path) = stand_in_sdk(&["pub-fails"]);
    let Some(server) = Server::start_with_env(Backend::Sqlite, &[("PATH", path)]) else { return };
    let token = server.user("dart@example.com");

    let files = [
        ("pubspec.yaml", "name: fn\nenvironment:\n  sdk: ^3.0.0\ndependencies:\n  nope: ^1.0.0\n"),
        ("main.dart", HANDLER),
    ];
    let (status, refused) = server.deploy(&token, "deps", archive(&files), &[]);
    assert_eq!((status, code(&refused)), (422, "dependencies_unresolved"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "version 1's dependencies could not be resolved, so it is not active: dart pub get failed: exit status: 65"
        ),
        "{message}"
    );
    assert!(message.contains("could not find package nope at https://pub.dev"), "{message}");
    // Resolution ran with a worker's environment: nothing of the server's.
    let calls = std::fs::read_to_string(sdk.path().join("calls")).unwrap();
    let resolution = calls.lines().find(|line| line.contains("args=pub get")).unwrap();
    assert!(resolution.contains("PATH=/usr/local/bin:/usr/bin:/bin "), "{resolution}");
    assert!(resolution.ends_with("SECRET="), "{resolution}");
    // The version is kept for inspection; nothing was made active.
    let info: Value = server.get("/api/functions/deps", Some(&token)).json().unwrap();
    assert_eq!(info["active_version"], Value::Null, "{info}");
    let versions: Value = server.get("/api/functions/deps/versions", Some(&token)).json().unwrap();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
}

#[test]
fn a_function_that_does_not_compile_answers_422_with_the_compilers_lines() {
    let (_sdk, path) = stand_in_sdk(&["compile-fails"]);
    let Some(server) = Server::start_with_env(Backend::Sqlite, &[("PATH", path)]) else { return };
    let token = server.user("dart@example.com");
    let (status, refused) = server.deploy(&token, "broken", archive(&[("main.dart", HANDLER)]), &[]);
    assert_eq!((status, code(&refused)), (422, "compile_failed"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("version 1 does not compile, so it is not active"), "{message}");
    assert!(message.contains("\nmain.dart:3:1: Error: Expected ';' after this."), "file:line:column: {message}");
    assert!(!message.contains(&server.data_dir.path().display().to_string()), "no server path: {message}");
    // Nothing runs it: no `dart run` behind the refusal.
    let info: Value = server.get("/api/functions/broken", Some(&token)).json().unwrap();
    assert_eq!(info["active_version"], Value::Null, "{info}");
}

/// The stand-in's `compile exe` delivers the real Dart executable (Dart Sass, assembled as
/// `dart compile exe` does): the deploy reaches a real VM in a sandboxed worker. Dart Sass is not
/// our adapter, so it never says `ready`: the deploy must say that, with the VM's own stderr.
#[test]
fn a_deploy_reaches_a_real_dart_vm_in_its_worker_and_reports_why_it_did_not_start() {
    let Some(real) = stand_in::real_dart::RealDart::from_env(
        "a_deploy_reaches_a_real_dart_vm_in_its_worker_and_reports_why_it_did_not_start",
    ) else {
        return;
    };
    let (sdk, path) = stand_in_sdk(&[]);
    // The SDK's AOT runtime beside its bin/dart, as in a real SDK: the workers' root is made of
    // its loader and libraries.
    std::fs::copy(&real.runtime, sdk.path().join("bin/dartaotruntime")).unwrap();
    let executable = sdk.path().join("sass-executable");
    real.assemble_sass(&executable);
    std::fs::write(sdk.path().join("worker-executable"), executable.display().to_string()).unwrap();
    let Some(server) = Server::start_with_env(Backend::Sqlite, &[("PATH", path)]) else { return };
    let token = server.user("dart@example.com");
    let (status, refused) = server.deploy(&token, "sass", archive(&[("main.dart", HANDLER)]), &[]);
    assert_eq!((status, code(&refused)), (422, "startup_failed"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    // Dart Sass without arguments prints its usage and exits 64: the VM ran, confined.
    assert!(message.contains("the worker exited with status 64 before it said ready: "), "{message}");
    assert!(message.contains("--version                  Print the version of Dart Sass."), "{message}");
    if server.health()["sandbox"]["mode"] == "on" {
        assert!(!message.contains("error while loading shared libraries"), "{message}");
    }
    // The VM's own complaint, on stderr: a flag it does not know, given through the environment
    // every `dart compile exe` executable reads its VM flags from.
    let env = r#"{"DART_VM_OPTIONS":"--bogus_vm_flag"}"#;
    let (status, refused) = server.deploy(&token, "sass-flags", archive(&[("main.dart", HANDLER)]), &[("env", env)]);
    assert_eq!((status, code(&refused)), (422, "startup_failed"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("the worker exited with status 255 before it said ready: "), "{message}");
    assert!(message.contains("Setting VM flags failed: Unrecognized flags: bogus_vm_flag"), "{message}");
}

/// A `dart` that is a script ending in no Dart executable stops the server at start, naming what
/// it found and what to do.
#[test]
fn a_dart_on_path_that_is_no_dart_executable_is_refused_at_start() {
    let bin = tempfile::tempdir().unwrap();
    let shim = bin.path().join("dart");
    std::fs::write(&shim, "#!/bin/sh\n# a version manager's shim with nothing installed\nexec /bin/true \"$@\"\n")
        .unwrap();
    stand_in::make_executable(&shim);
    let data = tempfile::tempdir().unwrap();
    let path = format!("{}:{}", bin.path().display(), std::env::var("PATH").unwrap_or_default());
    let (status, output) = run_until_exit(
        std::process::Command::new(workspace_binary("containerpub"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env("PATH", path)
            .env("JWT_SECRET", "a-test-secret-that-is-long-enough-0123456789")
            .env("CONTAINERPUB_WORKER_EXEC", workspace_binary("containerpub-worker-exec")),
    );
    assert!(!status.success(), "the server started: {output}");
    assert!(output.contains(&format!("the dart on PATH ({})", shim.display())), "{output}");
    assert!(output.contains("is a script (#!/bin/sh)"), "{output}");
    assert!(output.contains("not in a Dart SDK's bin/dart"), "{output}");
    assert!(output.contains("put the SDK's bin/ directory first on the server's PATH"), "{output}");
}

fn run_until_exit(command: &mut std::process::Command) -> (std::process::ExitStatus, String) {
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = command
        .stdin(std::process::Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(log.path()).unwrap())
}
