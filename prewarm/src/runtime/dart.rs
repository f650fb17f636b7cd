//! Preparing a Dart function: its dependencies resolved with `dart pub get`, an entry generated,
//! and the whole compiled ahead of time once per source and SDK. A function that does not compile
//! is refused with the compiler's own message: there is no `dart run` fallback.
//!
//! Why no fallback, from the SDK's source: since SDK 3.10 `bin/dart` is an AOT runtime running
//! the `dartdev` snapshot, and `dart run` (or `dart FILE`) ends in `DartDev::RunExec` /
//! `InvokeDartVM` (runtime/bin/dartdev.cc), which `exec`s `bin/dartvm`, the JIT VM, beside it.
//! In a worker's sandbox only the worker's own program may be executed (Landlock), so that
//! `exec` answers `EACCES`; allowing `dartvm` would run a compiler on the tenant's source in
//! every cold start (0.45–0.7 s to reach `main`, 40+ MB idle against 10–40 ms and a tenth of
//! that compiled), and `dart run` also checks the package's resolution, which wants to write
//! `.dart_tool/` in a read-only directory and may reach pub.dev. A source the AOT compiler
//! refuses would fail the same way in the JIT compiler: refusing it at deploy, with the
//! compiler's `file:line:column` messages, tells its author now rather than at the first call.
//!
//! A build lives in `builds/KEY/`, KEY being a hash of the function's (content-addressed) directory,
//! its entry, the SDK's version and the adapter's source, so it is made once and reused by every
//! version with that source, by rollbacks and after restarts; a new SDK gets a new KEY. It holds:
//! `package/` (a copy of the sources, where `pub get` writes `.dart_tool/` and `pubspec.lock`,
//! never into the shared artifact tree), `containerpub_adapter.dart` and `containerpub_entry.dart`
//! (imports relative, so the directory works wherever it is mounted), `worker` (the executable)
//! and `build.json` (what happened). It is made in a staging directory and renamed into place, so
//! a build directory that exists is complete; before the rename every file in it is made readable
//! (and the executable runnable) by every uid, by intent and whatever the server's umask: the
//! function's workers run as their own uid and read it read-only at `/containerpub/build`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EntryMode, RuntimeInstall, RuntimeUnavailable, DART_ADAPTER, DART_ENTRY_TEMPLATE};
use crate::FunctionEntry;

/// Where builds go and what bounds them (from [`crate::PrewarmConfig`]).
#[derive(Debug, Clone)]
pub struct DartBuildSettings {
    pub builds_dir: PathBuf,
    /// The server-wide pub cache: a second deploy of the same dependencies resolves offline.
    pub pub_cache: PathBuf,
    /// `PATH` of the tools, the one workers get.
    pub path: String,
    /// The whole of resolution: `pub get --offline` and, when that fails, `pub get` together.
    pub resolve_timeout: Duration,
    pub compile_timeout: Duration,
}

/// What a build did; kept as `build.json` and reported by deploys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DartBuild {
    /// `dart --version`'s line.
    pub sdk: String,
    /// Always true: a function runs as the native executable compiled for it (a build that did
    /// not compile is never kept). Kept in the answer for clients that read it.
    pub compiled: bool,
    /// True when the package had a `pubspec.yaml` that was resolved.
    pub resolved_dependencies: bool,
    pub resolve_ms: u64,
    pub compile_ms: u64,
    /// True when this prepare found the build already made (a rollback, a restart, equal source).
    #[serde(default)]
    pub reused: bool,
}

/// A prepared Dart function: its workers run `build_dir/worker`, with no arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDart {
    pub build_dir: PathBuf,
    pub build: DartBuild,
}

impl PreparedDart {
    /// The executable every worker of the function runs (a host path).
    pub fn program(&self) -> PathBuf {
        self.build_dir.join(WORKER)
    }
}

/// The compiled executable's name in a build directory.
const WORKER: &str = "worker";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DartPrepareError {
    #[error(transparent)]
    Unavailable(#[from] RuntimeUnavailable),
    /// `dart pub get` failed; the text is pub's own message.
    #[error("{0}")]
    DependenciesUnresolved(String),
    /// A resolved package has build hooks: code the SDK would run on the server while compiling.
    #[error("{0}")]
    DependenciesRefused(String),
    /// `dart compile exe` refused the function; the text is the compiler's, with paths relative
    /// to the function.
    #[error("{0}")]
    CompileFailed(String),
    #[error("cannot prepare the Dart build directory: {0}")]
    Build(String),
}

/// Renders the entry file that wires the function (`handler`, or the one the deploy named) to
/// the adapter. `function` is an identifier (`FunctionEntry::function_is_identifier`); the URIs
/// are relative to the entry's directory.
fn render_entry(function_main: &str, function: &str, adapter: &str) -> String {
    DART_ENTRY_TEMPLATE
        .replace("{{FUNCTION_MAIN_URI}}", &uri_path(function_main))
        .replace("{{FUNCTION_NAME}}", function)
        .replace("{{ADAPTER_URI}}", &uri_path(adapter))
}

/// A path as a URI reference inside a Dart string literal: every byte that could end or
/// interpolate the literal, or mean something in a URI, is percent-encoded.
fn uri_path(path: &str) -> String {
    let mut uri = String::new();
    for byte in path.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => uri.push(byte as char),
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri
}

/// Resolves, generates and compiles (or finds that done); returns the build.
pub async fn prepare_dart(
    install: &RuntimeInstall,
    settings: &DartBuildSettings,
    function_dir: &Path,
    entry: &FunctionEntry,
) -> Result<PreparedDart, DartPrepareError> {
    let dart = install.executable(super::Runtime::Dart)?.to_path_buf();
    let sdk = install.dart_version().unwrap_or("unknown").to_string();
    let build_dir = settings.builds_dir.join(build_key(function_dir, entry, &sdk));
    if let Some(mut build) = read_build(&build_dir) {
        build.reused = true;
        return Ok(PreparedDart { build_dir, build });
    }
    let staging = staging_dir(&settings.builds_dir);
    let made = make_build(&dart, settings, function_dir, entry, sdk, &staging).await;
    let build = match made {
        Ok(build) => build,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(error);
        }
    };
    // A build directory whose executable has gone is not a build: make way for this one.
    if build_dir.exists() && read_build(&build_dir).is_none() {
        let _ = std::fs::remove_dir_all(&build_dir);
    }
    // Another prepare of the same source may have finished first: its build is as good.
    if std::fs::rename(&staging, &build_dir).is_err() {
        let _ = std::fs::remove_dir_all(&staging);
        if let Some(theirs) = read_build(&build_dir) {
            return Ok(PreparedDart { build_dir, build: theirs });
        }
        return Err(DartPrepareError::Build(format!("cannot move the build into {}", build_dir.display())));
    }
    Ok(PreparedDart { build_dir, build })
}

async fn make_build(
    dart: &Path,
    settings: &DartBuildSettings,
    function_dir: &Path,
    entry: &FunctionEntry,
    sdk: String,
    staging: &Path,
) -> Result<DartBuild, DartPrepareError> {
    let io = |what: &str, error: std::io::Error| DartPrepareError::Build(format!("{what}: {error}"));
    std::fs::create_dir_all(&settings.pub_cache).map_err(|error| io("create the pub cache", error))?;
    // Not `.dart_tool/` or `build/`: machine output that is regenerated here.
    super::copy_sources(function_dir, &staging.join("package"), &[".dart_tool", "build"])
        .map_err(|error| io("copy the sources", error))?;
    std::fs::write(staging.join("containerpub_adapter.dart"), DART_ADAPTER)
        .and_then(|()| {
            std::fs::write(
                staging.join("containerpub_entry.dart"),
                render_entry(&format!("package/{}", entry.file), &entry.function, "containerpub_adapter.dart"),
            )
        })
        .map_err(|error| io("write the entry", error))?;
    let tools = Tools { dart, settings, home: staging };

    let package = staging.join("package");
    let resolved_dependencies = package.join("pubspec.yaml").is_file();
    let started = std::time::Instant::now();
    if resolved_dependencies {
        tools.resolve(&package).await?;
        refuse_build_hooks(&package)?;
    }
    let resolve_ms = started.elapsed().as_millis() as u64;

    let started = std::time::Instant::now();
    let mut compile = vec!["compile".to_string(), "exe".to_string()];
    if let Some(config) = package_config(staging) {
        compile.push(format!("--packages={}", config.display()));
    }
    compile.extend(["-o".to_string(), staging.join(WORKER).display().to_string()]);
    compile.push(staging.join(compile_target(entry)).display().to_string());
    match tools.run(&compile, &package, settings.compile_timeout).await {
        Ok(_) if staging.join(WORKER).is_file() => {}
        Ok(_) => {
            return Err(DartPrepareError::Build("dart compile exe reported success but wrote no executable".into()))
        }
        Err(ToolFailure::TimedOut(limit)) => {
            return Err(DartPrepareError::CompileFailed(format!(
                "dart compile exe did not finish within {limit:?} and was stopped"
            )))
        }
        Err(ToolFailure::NotStarted(message)) => return Err(DartPrepareError::Build(message)),
        Err(ToolFailure::Failed(output)) => {
            return Err(DartPrepareError::CompileFailed(compiler_message(&output, &settings.builds_dir)))
        }
    }
    let compile_ms = started.elapsed().as_millis() as u64;
    let build = DartBuild { sdk, compiled: true, resolved_dependencies, resolve_ms, compile_ms, reused: false };
    let record = serde_json::to_vec_pretty(&build).expect("builds serialize");
    std::fs::write(staging.join("build.json"), record).map_err(|error| io("write build.json", error))?;
    crate::sandbox::rootfs::make_world_readable(staging).map_err(DartPrepareError::Build)?;
    Ok(build)
}

/// What `dart compile exe` compiles, relative to the build directory: the generated entry for a
/// handler, the function's own file for a `main()` program.
fn compile_target(entry: &FunctionEntry) -> String {
    match entry.mode {
        EntryMode::Handler => "containerpub_entry.dart".into(),
        EntryMode::Main => format!("package/{}", entry.file),
    }
}

/// The build's package config, when dependencies were resolved.
fn package_config(build_dir: &Path) -> Option<PathBuf> {
    let path = build_dir.join("package/.dart_tool/package_config.json");
    path.is_file().then_some(path)
}

/// The compiler's messages for the function's author: what it printed on either stream (the
/// front end's `file:line:column: Error:` lines come first), with the build's paths made relative
/// to the function (`main.dart:3:5`) and the platform's generated files marked as such, at most
/// 40 lines and 4 KB.
fn compiler_message(output: &std::process::Output, builds_dir: &Path) -> String {
    let text = format!("{}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    // The entry is compiled from the package's copy, so its own file shows as `../containerpub_…`.
    let text = crate::stack_paths::relative_to_builds(&text, builds_dir)
        .replace("../containerpub_", "<platform>/containerpub_");
    let mut text = text.lines().filter(|line| !line.trim().is_empty()).take(40).collect::<Vec<_>>().join("\n");
    if text.len() > 4096 {
        let cut = (0..=4096).rev().find(|index| text.is_char_boundary(*index)).unwrap_or(0);
        text.truncate(cut);
    }
    format!("dart compile exe refused the function ({}):\n{text}", output.status)
}

/// `dart` with the environment a worker has (nothing of the server's), a time limit, and no stdin.
struct Tools<'a> {
    dart: &'a Path,
    settings: &'a DartBuildSettings,
    home: &'a Path,
}

/// Why a tool run did not succeed.
enum ToolFailure {
    TimedOut(Duration),
    NotStarted(String),
    /// It ran and exited unsuccessfully; its output.
    Failed(std::process::Output),
}

impl std::fmt::Display for ToolFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolFailure::TimedOut(limit) => write!(f, "it did not finish within {limit:?} and was stopped"),
            ToolFailure::NotStarted(message) => f.write_str(message),
            ToolFailure::Failed(output) => write!(f, "{} — {}", output.status, last_lines(output)),
        }
    }
}

impl Tools<'_> {
    /// `dart pub get`, offline first: with the server-wide cache holding every package the
    /// constraints need, a second deploy never reaches the network. Both attempts share one
    /// time limit, so resolution takes at most `resolve_timeout` in all.
    async fn resolve(&self, package: &Path) -> Result<(), DartPrepareError> {
        let limit = self.settings.resolve_timeout;
        let deadline = tokio::time::Instant::now() + limit;
        let offline = self.run(&["pub", "get", "--offline"], package, limit).await;
        let failure = match offline {
            Ok(_) => return Ok(()),
            Err(ToolFailure::TimedOut(_)) => ToolFailure::TimedOut(limit),
            Err(_) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.run(&["pub", "get"], package, left).await {
                    Ok(_) => return Ok(()),
                    Err(ToolFailure::TimedOut(_)) => ToolFailure::TimedOut(limit),
                    Err(failure) => failure,
                }
            }
        };
        Err(DartPrepareError::DependenciesUnresolved(format!("dart pub get failed: {failure}")))
    }

    /// Runs `dart ARGS` in `cwd`; on failure, why.
    async fn run(
        &self,
        args: &[impl AsRef<str>],
        cwd: &Path,
        timeout: Duration,
    ) -> Result<std::process::Output, ToolFailure> {
        let mut command = tokio::process::Command::new(self.dart);
        command
            .args(args.iter().map(AsRef::as_ref))
            .current_dir(cwd)
            .env_clear()
            .env("PATH", &self.settings.path)
            .env("HOME", self.home)
            .env("LANG", "C.UTF-8")
            .env("PUB_CACHE", &self.settings.pub_cache)
            // The SDK's usage reporting would otherwise try the network and write under HOME.
            .env("DART_SUPPRESS_ANALYTICS", "true")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        match tokio::time::timeout(timeout, command.output()).await {
            Err(_) => Err(ToolFailure::TimedOut(timeout)),
            Ok(Err(error)) => Err(ToolFailure::NotStarted(format!("{} could not start: {error}", self.dart.display()))),
            Ok(Ok(output)) if output.status.success() => Ok(output),
            Ok(Ok(output)) => Err(ToolFailure::Failed(output)),
        }
    }
}

/// The end of what a tool said: stderr, or stdout when stderr is empty (pub writes its
/// resolution errors to either), at most 20 lines and 4 KB.
fn last_lines(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = if stderr.trim().is_empty() { stdout } else { stderr };
    let lines: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
    let mut tail = lines[lines.len().saturating_sub(20)..].join("\n");
    if tail.len() > 4096 {
        let cut = (tail.len() - 4096..tail.len()).find(|index| tail.is_char_boundary(*index)).unwrap_or(0);
        tail = tail[cut..].to_string();
    }
    tail
}

/// Build hooks (`hook/build.dart`, `hook/link.dart`) are Dart programs the SDK runs while it
/// compiles (and on `dart run`) — on the server, outside any sandbox, for `dart compile exe`. The
/// analyzer refuses them in the function's own package; a dependency can bring them too, which
/// only the resolved packages show. Every package of the resolution is checked; any hook refuses.
fn refuse_build_hooks(package: &Path) -> Result<(), DartPrepareError> {
    let tool = package.join(".dart_tool");
    let unreadable = |error: String| DartPrepareError::Build(format!("read the resolved package config: {error}"));
    let text =
        std::fs::read_to_string(tool.join("package_config.json")).map_err(|error| unreadable(error.to_string()))?;
    let config: serde_json::Value = serde_json::from_str(&text).map_err(|error| unreadable(error.to_string()))?;
    let mut hooked = Vec::new();
    for entry in config["packages"].as_array().into_iter().flatten() {
        let (Some(name), Some(root)) = (entry["name"].as_str(), entry["rootUri"].as_str()) else { continue };
        let root = match root.strip_prefix("file://") {
            Some(absolute) => PathBuf::from(absolute),
            None => tool.join(root),
        };
        if ["hook/build.dart", "hook/link.dart"].iter().any(|hook| root.join(hook).exists()) {
            hooked.push(name.to_string());
        }
    }
    if hooked.is_empty() {
        return Ok(());
    }
    Err(DartPrepareError::DependenciesRefused(format!(
        "{} {} build hooks (hook/build.dart or hook/link.dart): code the Dart SDK runs on the server while compiling, which the platform does not allow; depend on a version without hooks",
        hooked.join(", "),
        if hooked.len() == 1 { "has" } else { "have" }
    )))
}

/// What a build depends on: the (content-addressed) source directory, the entry, the SDK and the
/// adapter and entry template compiled into this server.
fn build_key(function_dir: &Path, entry: &FunctionEntry, sdk: &str) -> String {
    let mut hash = Sha256::new();
    for part in [
        function_dir.display().to_string().as_str(),
        &entry.file,
        &entry.function,
        entry.mode.as_str(),
        sdk,
        DART_ADAPTER,
        DART_ENTRY_TEMPLATE,
    ] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hex::encode(&hash.finalize()[..12])
}

/// The build kept in `build_dir`, when it is complete: compiled, its executable there.
fn read_build(build_dir: &Path) -> Option<DartBuild> {
    let build: DartBuild = serde_json::from_slice(&std::fs::read(build_dir.join("build.json")).ok()?).ok()?;
    (build.compiled && build_dir.join(WORKER).is_file()).then_some(build)
}

fn staging_dir(builds_dir: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    builds_dir.join(format!(".staging-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_imports_escape_characters_dart_would_interpret() {
        let entry = render_entry("package/fn's $dir/main.dart", "handle", "containerpub_adapter.dart");
        assert!(entry.contains("import 'package/fn%27s%20%24dir/main.dart' as function;"), "{entry}");
        assert!(entry.contains("import 'containerpub_adapter.dart' as containerpub;"));
        assert!(entry.contains("containerpub.serve(function.handle)"), "{entry}");
    }

    #[test]
    fn a_build_key_changes_with_the_source_the_entry_and_the_sdk() {
        let entry = FunctionEntry::default_for(super::super::Runtime::Dart, EntryMode::Handler);
        let key = build_key(Path::new("/data/functions/abc"), &entry, "Dart SDK version: 3.5.0");
        assert_eq!(key, build_key(Path::new("/data/functions/abc"), &entry, "Dart SDK version: 3.5.0"));
        assert_ne!(key, build_key(Path::new("/data/functions/abd"), &entry, "Dart SDK version: 3.5.0"));
        assert_ne!(key, build_key(Path::new("/data/functions/abc"), &entry, "Dart SDK version: 3.6.0"));
        let main = FunctionEntry { mode: EntryMode::Main, ..entry };
        assert_ne!(key, build_key(Path::new("/data/functions/abc"), &main, "Dart SDK version: 3.5.0"));
    }
}
