//! The Dart build steps — `dart pub get`, the generated entry, `dart compile exe`, the cache —
//! driven against a stand-in `dart` (`stand_in/`) that records its calls. These tests are about
//! commands and files only: arguments, environment, working directory, time limits, error
//! mapping, caching and reuse. No Dart code compiles here: `real_dart_vm` runs a real Dart
//! executable in the sandbox, and `scripts/dart-e2e` runs the whole SDK where there is one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use prewarm::runtime::{prepare_dart, DartBuildSettings, DartPrepareError, RuntimeInstall};
use prewarm::{EntryMode, FunctionEntry, Runtime};

use crate::stand_in;

struct Sdk {
    dir: tempfile::TempDir,
}

impl Sdk {
    fn new(version: &str) -> Sdk {
        let dir = tempfile::tempdir().unwrap();
        stand_in::install(dir.path());
        let sdk = Sdk { dir };
        sdk.set_version(version);
        sdk
    }

    fn set_version(&self, version: &str) {
        std::fs::write(self.dir.path().join("version"), format!("Dart SDK version: {version} (stable)\n")).unwrap();
    }

    fn flag(&self, name: &str, on: bool) {
        let path = self.dir.path().join(name);
        if on {
            std::fs::write(path, "").unwrap();
        } else {
            let _ = std::fs::remove_file(path);
        }
    }

    /// What the stand-in was asked to do, one line per call, `--version` calls left out.
    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("calls"))
            .unwrap_or_default()
            .lines()
            .filter(|line| !line.contains("args=--version"))
            .map(str::to_string)
            .collect()
    }

    /// A `RuntimeInstall` finding this stand-in: a server starting.
    fn install(&self, adapters: &Path) -> RuntimeInstall {
        RuntimeInstall::discover(Some(self.dir.path().join("bin").as_os_str()), adapters).unwrap()
    }
}

struct Host {
    work: tempfile::TempDir,
}

impl Host {
    fn new() -> Host {
        Host { work: tempfile::tempdir().unwrap() }
    }

    fn settings(&self) -> DartBuildSettings {
        DartBuildSettings {
            builds_dir: self.work.path().join("state/builds"),
            pub_cache: self.work.path().join("state/pub-cache"),
            path: "/usr/local/bin:/usr/bin:/bin".into(),
            resolve_timeout: Duration::from_secs(20),
            compile_timeout: Duration::from_secs(20),
        }
    }

    /// A function's (content-addressed) directory with `files`.
    fn function(&self, sha: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.work.path().join("functions").join(sha);
        for (file, contents) in files {
            std::fs::create_dir_all(dir.join(file).parent().unwrap()).unwrap();
            std::fs::write(dir.join(file), contents).unwrap();
        }
        dir
    }

    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.work.path().join("state/builds"))
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| entry.file_name().to_string_lossy().into_owned())
                    .filter(|name| name.starts_with(".staging"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

const PUBSPEC: &str = "name: fn\nenvironment:\n  sdk: ^3.0.0\ndependencies:\n  postgres: ^3.0.0\n";
const MAIN: &str = "import 'package:postgres/postgres.dart';\n@function\nFuture<Map<String, dynamic>> handler(Map<String, dynamic> body) async => {};\n";

fn handler() -> FunctionEntry {
    FunctionEntry::default_for(Runtime::Dart, EntryMode::Handler)
}

#[tokio::test]
async fn dependencies_are_resolved_into_the_build_then_the_entry_is_compiled() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    let install = sdk.install(&host.work.path().join("adapters"));
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let prepared = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap();

    let build = &prepared.build;
    assert!(build.compiled && build.resolved_dependencies && !build.reused, "{build:?}");
    assert_eq!(build.sdk, "Dart SDK version: 3.5.0 (stable)");
    assert_eq!(prepared.program(), prepared.build_dir.join("worker"));
    let calls = sdk.calls();
    assert_eq!(calls.len(), 3, "{calls:#?}");
    // Offline first (the cache is empty, so it fails), then online, then the compiler.
    assert!(calls[0].contains("args=pub get --offline"), "{}", calls[0]);
    assert!(calls[1].contains("args=pub get "), "{}", calls[1]);
    let packages = prepared.build_dir.join("package/.dart_tool/package_config.json");
    assert!(calls[2].contains("args=compile exe --packages="), "{}", calls[2]);
    assert!(calls[2].ends_with("SECRET="), "nothing of the server's environment: {}", calls[2]);
    // Every tool ran in the build's own copy of the package, with a worker's environment.
    let settings = host.settings();
    for call in &calls {
        assert!(call.contains(&format!("PATH={} ", settings.path)), "{call}");
        assert!(call.contains(&format!("PUB_CACHE={} ", settings.pub_cache.display())), "{call}");
        assert!(call.contains("LANG=C.UTF-8 "), "{call}");
        assert!(call.contains("/state/builds/.staging-"), "ran in the staging copy: {call}");
        assert!(call.contains("SECRET= ") || call.ends_with("SECRET="), "{call}");
    }
    assert!(packages.is_file(), "the package config is kept with the build");
    assert!(!function.join(".dart_tool").exists(), "the shared artifact tree is never written");
    let entry = std::fs::read_to_string(prepared.build_dir.join("containerpub_entry.dart")).unwrap();
    assert!(entry.contains("import 'package/main.dart' as function;"), "{entry}");
    assert!(entry.contains("import 'containerpub_adapter.dart' as containerpub;"), "{entry}");
    assert!(host.leftovers().is_empty());
}

#[tokio::test]
async fn a_build_is_made_once_per_source_and_sdk_and_reused_after_a_restart() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    let adapters = host.work.path().join("adapters");
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let first = prepare_dart(&sdk.install(&adapters), &host.settings(), &function, &handler()).await.unwrap();
    let made = sdk.calls().len();

    // The same source again (a rollback, another version with equal code), then after a restart.
    for install in [sdk.install(&adapters), sdk.install(&adapters)] {
        let again = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap();
        assert!(again.build.reused, "{:?}", again.build);
        assert_eq!(again.build_dir, first.build_dir);
        assert_eq!(sdk.calls().len(), made, "nothing ran again");
    }

    // Other source with the same dependencies: resolved offline from the server-wide cache.
    let other = host.function("def", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    prepare_dart(&sdk.install(&adapters), &host.settings(), &other, &handler()).await.unwrap();
    let calls = sdk.calls();
    assert!(calls[made].contains("args=pub get --offline"), "{}", calls[made]);
    assert!(calls[made + 1].contains("args=compile exe"), "no online resolution: {:#?}", &calls[made..]);

    // A new SDK recompiles.
    sdk.set_version("3.6.0");
    let upgraded = prepare_dart(&sdk.install(&adapters), &host.settings(), &function, &handler()).await.unwrap();
    assert!(!upgraded.build.reused);
    assert_ne!(upgraded.build_dir, first.build_dir);
    assert!(sdk.calls().last().unwrap().contains("args=compile exe"));
}

#[tokio::test]
async fn a_failed_resolution_carries_pubs_message_and_leaves_nothing() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    sdk.flag("pub-fails", true);
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let install = sdk.install(&host.work.path().join("adapters"));
    let error = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap_err();
    let DartPrepareError::DependenciesUnresolved(message) = error else { panic!("{error:?}") };
    assert!(message.starts_with("dart pub get failed: exit status: 65"), "{message}");
    assert!(message.contains("could not find package nope at https://pub.dev"), "{message}");
    assert!(host.leftovers().is_empty());
    assert!(!sdk.calls().iter().any(|call| call.contains("compile")), "nothing compiles without its dependencies");

    // Resolution that hangs is stopped at its time limit.
    sdk.flag("pub-fails", false);
    sdk.flag("pub-sleep", true);
    let settings = DartBuildSettings { resolve_timeout: Duration::from_millis(300), ..host.settings() };
    let started = std::time::Instant::now();
    let error = prepare_dart(&install, &settings, &function, &handler()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(error.to_string().contains("did not finish within 300ms and was stopped"), "{error}");
}

#[tokio::test]
async fn resolution_takes_its_time_limit_in_all_offline_and_online_together() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    // The offline attempt fails after 1.5 s (the cache is empty); the online one would hang.
    std::fs::write(sdk.dir.path().join("pub-offline-sleep"), "1.5").unwrap();
    sdk.flag("pub-online-sleep", true);
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let install = sdk.install(&host.work.path().join("adapters"));
    let settings = DartBuildSettings { resolve_timeout: Duration::from_secs(2), ..host.settings() };
    let started = std::time::Instant::now();
    let error = prepare_dart(&install, &settings, &function, &handler()).await.unwrap_err();
    let took = started.elapsed();
    // With a limit per attempt, this took 1.5 s + 2 s.
    assert!(took < Duration::from_millis(2900), "resolution took {took:?} with a 2 s limit");
    assert!(error.to_string().contains("did not finish within 2s and was stopped"), "{error}");
    let calls = sdk.calls();
    assert!(calls.iter().any(|call| call.contains("args=pub get --offline")), "{calls:#?}");
    assert!(calls.iter().any(|call| call.contains("args=pub get PATH")), "the online attempt ran: {calls:#?}");
}

#[tokio::test]
async fn a_function_that_does_not_compile_is_refused_with_the_compilers_messages() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    sdk.flag("compile-fails", true);
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let install = sdk.install(&host.work.path().join("adapters"));
    let error = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap_err();
    let DartPrepareError::CompileFailed(message) = error else { panic!("{error:?}") };
    // Both streams, in order, with paths relative to the function: the front end's
    // file:line:column lines, then dartdev's own.
    assert!(message.starts_with("dart compile exe refused the function (exit status: 254):\n"), "{message}");
    assert!(message.contains("\nmain.dart:3:1: Error: Expected ';' after this.\n"), "{message}");
    assert!(
        message.contains("\n<platform>/containerpub_entry.dart:5:41: Error: Undefined name 'handler'."),
        "{message}"
    );
    assert!(message.ends_with("Generating AOT kernel dill failed!"), "{message}");
    assert!(!message.contains(&host.work.path().display().to_string()), "no server path: {message}");
    // Nothing is kept: the next prepare of the same source compiles again (and is refused again).
    assert!(host.leftovers().is_empty());
    let builds: Vec<_> = std::fs::read_dir(host.settings().builds_dir).unwrap().flatten().collect();
    assert!(builds.is_empty(), "{builds:?}");
    let compiles = |sdk: &Sdk| sdk.calls().iter().filter(|call| call.contains("args=compile exe")).count();
    assert_eq!(compiles(&sdk), 1);
    prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap_err();
    assert_eq!(compiles(&sdk), 2);
}

#[tokio::test]
async fn a_build_is_readable_and_its_executable_runnable_by_every_uid_whatever_the_umask() {
    // The stand-in writes with umask 077 and makes the executable 0700, as a careful tool may;
    // workers run as the function's own uid and must still read and run the build.
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let install = sdk.install(&host.work.path().join("adapters"));
    let prepared = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap();
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&prepared.program()), 0o755);
    assert_eq!(mode(&prepared.build_dir.join("package/.dart_tool")), 0o755);
    assert_eq!(mode(&prepared.build_dir.join("package/.dart_tool/package_config.json")), 0o644);
    let mut pending = vec![prepared.build_dir.clone()];
    while let Some(path) = pending.pop() {
        let wanted = if path.is_dir() { 0o555 } else { 0o444 };
        assert_eq!(mode(&path) & wanted, wanted, "{} is {:o}", path.display(), mode(&path));
        assert_eq!(mode(&path) & 0o022, 0, "{} is writable by others: {:o}", path.display(), mode(&path));
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().flatten().map(|entry| entry.path()));
        }
    }
}

#[tokio::test]
async fn a_main_program_is_compiled_itself_and_a_package_without_pubspec_skips_pub() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    let function = host.function("abc", &[("bin/app.dart", "void main() { print('{}'); }\n")]);
    let entry =
        FunctionEntry { file: "bin/app.dart".into(), ..FunctionEntry::default_for(Runtime::Dart, EntryMode::Main) };
    let install = sdk.install(&host.work.path().join("adapters"));
    let prepared = prepare_dart(&install, &host.settings(), &function, &entry).await.unwrap();
    assert!(prepared.build.compiled && !prepared.build.resolved_dependencies);
    let calls = sdk.calls();
    assert_eq!(calls.len(), 1, "{calls:#?}");
    // Compiled in the staging copy that became the build directory.
    assert!(calls[0].contains("args=compile exe -o /"), "{}", calls[0]);
    assert!(calls[0].contains("/worker /") && calls[0].contains("/package/bin/app.dart PATH="), "{}", calls[0]);
    assert!(prepared.build_dir.join("package/bin/app.dart").is_file());
}

#[tokio::test]
async fn a_dependency_with_build_hooks_is_refused_before_anything_compiles() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    let hooked = host.settings().pub_cache.join("hosted/pub.dev/postgres-3.0.0/hook");
    std::fs::create_dir_all(&hooked).unwrap();
    std::fs::write(hooked.join("build.dart"), "void main(List<String> args) {}\n").unwrap();
    let function = host.function("abc", &[("pubspec.yaml", PUBSPEC), ("main.dart", MAIN)]);
    let install = sdk.install(&host.work.path().join("adapters"));
    let error = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap_err();
    let DartPrepareError::DependenciesRefused(message) = error else { panic!("{error:?}") };
    assert!(message.starts_with("postgres has build hooks (hook/build.dart or hook/link.dart)"), "{message}");
    assert!(!sdk.calls().iter().any(|call| call.contains("compile")), "nothing compiled");
    assert!(host.leftovers().is_empty());
}

#[tokio::test]
async fn a_build_whose_executable_went_missing_is_made_again() {
    let (sdk, host) = (Sdk::new("3.5.0"), Host::new());
    let function = host.function("abc", &[("main.dart", MAIN)]);
    let install = sdk.install(&host.work.path().join("adapters"));
    let first = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap();
    std::fs::remove_file(first.build_dir.join("worker")).unwrap();
    let again = prepare_dart(&install, &host.settings(), &function, &handler()).await.unwrap();
    assert!(!again.build.reused && again.build.compiled);
    assert!(again.build_dir.join("worker").is_file());
    assert!(host.leftovers().is_empty());
}
