//! Runtimes: where each one's executable is, how a function of each kind is started.
//!
//! The adapters under `prewarm/runtimes/` are compiled into the crate and written to the state
//! directory at start-up, so a server binary carries everything it needs.

mod dart;
pub mod dart_vm;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::shape::Shape;

pub use dart::{prepare_dart, DartBuild, DartBuildSettings, DartPrepareError, PreparedDart};

/// A supported function runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Dart,
    Node,
    Python,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [Runtime::Dart, Runtime::Node, Runtime::Python];

    pub fn name(self) -> &'static str {
        match self {
            Runtime::Dart => "dart",
            Runtime::Node => "node",
            Runtime::Python => "python",
        }
    }

    /// The executable looked up on `PATH`.
    pub fn executable_name(self) -> &'static str {
        match self {
            Runtime::Dart => "dart",
            Runtime::Node => "node",
            Runtime::Python => "python3",
        }
    }

    /// The entry file of a function of this runtime, relative to its directory.
    pub fn entry_file(self) -> &'static str {
        match self {
            Runtime::Dart => "main.dart",
            Runtime::Node => "index.js",
            Runtime::Python => "main.py",
        }
    }
}

impl std::str::FromStr for Runtime {
    type Err = String;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Runtime::ALL
            .into_iter()
            .find(|runtime| runtime.name() == name)
            .ok_or_else(|| format!("unknown runtime {name:?}: expected dart, node or python"))
    }
}

/// How a function is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryMode {
    /// A `handler` kept loaded in warm workers.
    Handler,
    /// A `main()`-only program: one process per invocation (the seed's model).
    Main,
}

impl EntryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryMode::Handler => "handler",
            EntryMode::Main => "main",
        }
    }
}

/// Executables found on the server's `PATH` and the adapters written for them.
#[derive(Debug, Clone)]
pub struct RuntimeInstall {
    executables: [Option<PathBuf>; 3],
    adapter_dir: PathBuf,
    /// `dart --version`'s line: part of every Dart build's key, so a new SDK recompiles.
    dart_version: Option<String>,
}

/// Why the runtimes on this host cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot write the runtime adapters into {path}: {source}")]
    Adapters { path: PathBuf, source: std::io::Error },
    /// The `dart` on `PATH` is not, and does not run, a Dart SDK's executable (`dart_vm`).
    #[error("{0}")]
    Dart(String),
}

/// A runtime the host does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime unavailable: {executable} not found on PATH")]
pub struct RuntimeUnavailable {
    pub executable: &'static str,
}

const NODE_ADAPTER: &str = include_str!("../../runtimes/node/adapter.cjs");
const PYTHON_ADAPTER: &str = include_str!("../../runtimes/python/adapter.py");

/// One module per calling convention (see `shape`), beside the adapter that loads it.
const SHAPE_MODULES: [(&str, &str); 22] = [
    ("node_shapes/request.cjs", include_str!("../../runtimes/node/shapes/request.cjs")),
    ("node_shapes/lambda.cjs", include_str!("../../runtimes/node/shapes/lambda.cjs")),
    ("node_shapes/fetch.cjs", include_str!("../../runtimes/node/shapes/fetch.cjs")),
    ("node_shapes/node_http.cjs", include_str!("../../runtimes/node/shapes/node_http.cjs")),
    ("node_shapes/openfaas.cjs", include_str!("../../runtimes/node/shapes/openfaas.cjs")),
    ("node_shapes/knative.cjs", include_str!("../../runtimes/node/shapes/knative.cjs")),
    ("node_shapes/appwrite.cjs", include_str!("../../runtimes/node/shapes/appwrite.cjs")),
    ("node_shapes/fission.cjs", include_str!("../../runtimes/node/shapes/fission.cjs")),
    ("node_shapes/openwhisk.cjs", include_str!("../../runtimes/node/shapes/openwhisk.cjs")),
    ("node_shapes/detect.cjs", include_str!("../../runtimes/node/shapes/detect.cjs")),
    ("containerpub_shapes/__init__.py", include_str!("../../runtimes/python/containerpub_shapes/__init__.py")),
    ("containerpub_shapes/request.py", include_str!("../../runtimes/python/containerpub_shapes/request.py")),
    ("containerpub_shapes/lambda_event.py", include_str!("../../runtimes/python/containerpub_shapes/lambda_event.py")),
    ("containerpub_shapes/openfaas.py", include_str!("../../runtimes/python/containerpub_shapes/openfaas.py")),
    (
        "containerpub_shapes/flask_request.py",
        include_str!("../../runtimes/python/containerpub_shapes/flask_request.py"),
    ),
    ("containerpub_shapes/http_handler.py", include_str!("../../runtimes/python/containerpub_shapes/http_handler.py")),
    ("containerpub_shapes/wsgi.py", include_str!("../../runtimes/python/containerpub_shapes/wsgi.py")),
    ("containerpub_shapes/asgi.py", include_str!("../../runtimes/python/containerpub_shapes/asgi.py")),
    ("containerpub_shapes/appwrite.py", include_str!("../../runtimes/python/containerpub_shapes/appwrite.py")),
    ("containerpub_shapes/openwhisk.py", include_str!("../../runtimes/python/containerpub_shapes/openwhisk.py")),
    ("containerpub_shapes/fission.py", include_str!("../../runtimes/python/containerpub_shapes/fission.py")),
    ("containerpub_shapes/detect.py", include_str!("../../runtimes/python/containerpub_shapes/detect.py")),
];
pub(crate) const DART_ADAPTER: &str = include_str!("../../runtimes/dart/containerpub_adapter.dart");
pub(crate) const DART_ENTRY_TEMPLATE: &str = include_str!("../../runtimes/dart/entry.dart.template");

impl RuntimeInstall {
    /// Looks the runtimes up on `search_path` and writes the adapters into `adapter_dir`. A `dart`
    /// that is not, and does not run, a Dart SDK's executable is refused (see `dart_vm`).
    pub fn discover(search_path: Option<&std::ffi::OsStr>, adapter_dir: &Path) -> Result<Self, DiscoveryError> {
        let adapters = |source| DiscoveryError::Adapters { path: adapter_dir.to_path_buf(), source };
        std::fs::create_dir_all(adapter_dir).map_err(adapters)?;
        let adapter_files = [
            ("adapter.cjs", NODE_ADAPTER),
            ("adapter.py", PYTHON_ADAPTER),
            ("containerpub_adapter.dart", DART_ADAPTER),
        ];
        for (name, contents) in adapter_files.into_iter().chain(SHAPE_MODULES) {
            let path = adapter_dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(adapters)?;
            }
            std::fs::write(path, contents).map_err(adapters)?;
        }
        let mut executables: [Option<PathBuf>; 3] = Default::default();
        for runtime in Runtime::ALL {
            let Some(found) = find_on_path(search_path, runtime.executable_name()) else { continue };
            executables[runtime as usize] = Some(match runtime {
                Runtime::Dart => dart_vm::resolve(&found).map_err(DiscoveryError::Dart)?,
                _ => resolve_interpreter(runtime, found),
            });
        }
        let dart_version = executables[Runtime::Dart as usize].as_deref().and_then(sdk_version);
        Ok(Self { executables, adapter_dir: adapter_dir.to_path_buf(), dart_version })
    }

    /// The Dart SDK's version line, when there is an SDK.
    pub fn dart_version(&self) -> Option<&str> {
        self.dart_version.as_deref()
    }

    /// The runtime's executable, or the error users see when it is missing.
    pub fn executable(&self, runtime: Runtime) -> Result<&Path, RuntimeUnavailable> {
        self.executables[runtime as usize]
            .as_deref()
            .ok_or(RuntimeUnavailable { executable: runtime.executable_name() })
    }

    /// Which runtimes this host can run, for `/healthz`.
    pub fn available(&self) -> Vec<(Runtime, Option<PathBuf>)> {
        Runtime::ALL.iter().map(|runtime| (*runtime, self.executables[*runtime as usize].clone())).collect()
    }

    pub fn adapter_dir(&self) -> &Path {
        &self.adapter_dir
    }

    /// Program and arguments of a Node or Python function: a warm worker runs the runtime's
    /// adapter with the entry file and the function to call (`Handler`), a oneshot run runs the
    /// entry file as a program (`Main`). Dart functions run the executable [`prepare_dart`]
    /// compiled, in both modes. `entry` and `adapter_dir` are paths as the worker sees them (the
    /// sandbox moves both).
    pub fn command(
        &self,
        runtime: Runtime,
        mode: EntryMode,
        entry: &Path,
        function: &str,
        shape: Option<Shape>,
        adapter_dir: &Path,
    ) -> Result<(PathBuf, Vec<String>), RuntimeUnavailable> {
        let program = self.executable(runtime)?.to_path_buf();
        let entry = entry.display().to_string();
        let adapter = |file: &str| adapter_dir.join(file).display().to_string();
        // The adapter detects the shape when the deploy named none (`auto`).
        let shape = shape.map_or("auto", Shape::as_str).to_string();
        let args = match (runtime, mode) {
            (Runtime::Node, EntryMode::Handler) => vec![adapter("adapter.cjs"), entry, function.into(), shape],
            (Runtime::Node, EntryMode::Main) => vec![entry],
            // -B: never write .pyc files into the function's directory.
            (Runtime::Python, EntryMode::Handler) => {
                vec!["-B".into(), adapter("adapter.py"), entry, function.into(), shape]
            }
            (Runtime::Python, EntryMode::Main) => vec!["-B".into(), entry],
            (Runtime::Dart, _) => unreachable!("Dart functions run the executable prepare_dart compiled"),
        };
        Ok((program, args))
    }
}

/// Asks an interpreter for its real executable. Version managers put shell-script shims on `PATH`
/// (pyenv, nvm, asdf): spawning the shim costs a shell start per worker and leaks the shim's own
/// variables into the worker, so workers run the interpreter the shim would have chosen.
fn resolve_interpreter(runtime: Runtime, found: PathBuf) -> PathBuf {
    let probe: &[&str] = match runtime {
        Runtime::Python => &["-c", "import sys; sys.stdout.write(sys.executable)"],
        Runtime::Node => &["-p", "process.execPath"],
        Runtime::Dart => unreachable!("dart is resolved by dart_vm"),
    };
    let output = std::process::Command::new(&found).args(probe).stdin(std::process::Stdio::null()).output();
    match output {
        Ok(output) if output.status.success() => {
            let resolved = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
            if resolved.is_absolute() && resolved.is_file() {
                return resolved;
            }
            found
        }
        _ => found,
    }
}

/// `dart --version`'s first line (older SDKs print it on stderr).
fn sdk_version(dart: &Path) -> Option<String> {
    let output = std::process::Command::new(dart)
        .arg("--version")
        .env_clear()
        .env("DART_SUPPRESS_ANALYTICS", "true")
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = [output.stdout, output.stderr].concat();
    let line = String::from_utf8_lossy(&text).lines().map(str::trim).find(|line| !line.is_empty())?.to_string();
    Some(line)
}

/// Finds an executable file on a `PATH`-style list.
pub fn find_on_path(search_path: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path?).map(|dir| dir.join(name)).find(|candidate| is_executable_file(candidate))
}

/// A regular file with an execute bit.
pub fn is_executable_file(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// Copies a function's sources for a build step that writes beside them (`dart pub get`, npm):
/// files and directories, never links (uploads have none: extraction and the analyzer refuse
/// them), and not the directories named in `skipped`.
pub(crate) fn copy_sources(from: &Path, to: &Path, skipped: &[&str]) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let name = entry.file_name();
        let target = to.join(&name);
        if kind.is_dir() {
            if !skipped.iter().any(|skip| name == *skip) {
                copy_sources(&entry.path(), &target, skipped)?;
            }
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_runtime_says_which_executable_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let install = RuntimeInstall::discover(Some(dir.path().as_os_str()), &dir.path().join("adapters")).unwrap();
        assert!(install.available().iter().all(|(_, path)| path.is_none()));
        let error = install.executable(Runtime::Dart).unwrap_err();
        assert_eq!(error.to_string(), "runtime unavailable: dart not found on PATH");
        assert!(dir.path().join("adapters/adapter.py").is_file());
    }

    #[test]
    fn interpreters_behind_shims_are_resolved_to_their_real_executable() {
        let dir = tempfile::tempdir().unwrap();
        let Some(real) = find_on_path(std::env::var_os("PATH").as_deref(), "python3") else {
            return;
        };
        let shim = dir.path().join("python3");
        std::fs::write(&shim, format!("#!/bin/sh\nexec {} \"$@\"\n", real.display())).unwrap();
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let install = RuntimeInstall::discover(Some(dir.path().as_os_str()), &dir.path().join("adapters")).unwrap();
        let resolved = install.executable(Runtime::Python).unwrap();
        assert_ne!(resolved, shim.as_path(), "the shell shim was not resolved");
        assert!(resolved.is_absolute());
    }

    #[test]
    fn runtimes_parse_from_their_names() {
        assert_eq!("node".parse::<Runtime>(), Ok(Runtime::Node));
        assert!("ruby".parse::<Runtime>().unwrap_err().contains("expected dart, node or python"));
    }
}
