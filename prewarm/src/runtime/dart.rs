//! Preparing a Dart function: a generated entry file, compiled ahead of time when the SDK can.
//!
//! Published figures: `dart run` from source takes 0.45–0.7 s to reach `main` and an idle JIT VM
//! holds 40+ MB; an AOT executable starts in 10–40 ms with about a tenth of the memory. So prepare
//! runs `dart compile exe` on the generated entry and falls back to `dart run` when that fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{RuntimeInstall, RuntimeUnavailable, DART_ENTRY_TEMPLATE};
use crate::FunctionEntry;

/// How long `dart compile exe` may take before prepare falls back to `dart run`.
const COMPILE_TIMEOUT: Duration = Duration::from_secs(180);

/// The command that starts a prepared Dart function's warm worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedDart {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// True when the entry was compiled to a native executable.
    pub compiled: bool,
    /// Why compilation was skipped or failed, when it was.
    pub compile_note: Option<String>,
}

/// Renders the entry file that wires the function (`handler`, or the one the deploy named) to
/// the adapter. `function` is an identifier (`FunctionEntry::function_is_identifier`).
pub fn render_entry(function_main: &Path, function: &str, adapter: &Path) -> String {
    DART_ENTRY_TEMPLATE
        .replace("{{FUNCTION_MAIN_URI}}", &file_uri(function_main))
        .replace("{{FUNCTION_NAME}}", function)
        .replace("{{ADAPTER_URI}}", &file_uri(adapter))
}

fn file_uri(path: &Path) -> String {
    // Dart reads import URIs as string literals; escape what would end or interpolate the literal.
    let mut uri = String::from("file://");
    for byte in path.display().to_string().bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => uri.push(byte as char),
            other => uri.push_str(&format!("%{other:02X}")),
        }
    }
    uri
}

/// Where a sandboxed worker sees the function's directory and the adapters (`/fn`, …).
#[derive(Debug, Clone, Copy)]
pub struct WorkerView<'a> {
    pub function_dir: &'a Path,
    pub adapter_dir: &'a Path,
}

/// Writes the entry into `build_dir` and compiles it if the SDK allows; returns how to start workers.
/// The compiler runs on the host, so its entry imports host paths; the `dart run` fallback runs
/// in the worker, so with a `worker_view` (the sandbox) it gets an entry importing the worker's.
pub async fn prepare_dart(
    install: &RuntimeInstall,
    function_dir: &Path,
    function_entry: &FunctionEntry,
    build_dir: &Path,
    worker_view: Option<WorkerView<'_>>,
) -> Result<PreparedDart, RuntimeUnavailable> {
    let dart = install.executable(super::Runtime::Dart)?.to_path_buf();
    let (file, function) = (function_entry.file.as_str(), function_entry.function.as_str());
    let entry = build_dir.join("containerpub_entry.dart");
    let adapter = install.adapter_dir().join("containerpub_adapter.dart");
    let run_entry = match worker_view {
        Some(_) => build_dir.join("containerpub_run_entry.dart"),
        None => entry.clone(),
    };
    let write = std::fs::create_dir_all(build_dir)
        .and_then(|()| std::fs::write(&entry, render_entry(&function_dir.join(file), function, &adapter)))
        .and_then(|()| match worker_view {
            Some(view) => std::fs::write(
                &run_entry,
                render_entry(
                    &view.function_dir.join(file),
                    function,
                    &view.adapter_dir.join("containerpub_adapter.dart"),
                ),
            ),
            None => Ok(()),
        });
    let packages = function_dir.join(".dart_tool/package_config.json");
    let mut run_args = vec!["run".to_string()];
    if packages.is_file() {
        run_args.push(format!("--packages={}", packages.display()));
    }
    run_args.push(run_entry.display().to_string());
    if let Err(error) = write {
        return Ok(PreparedDart {
            program: dart,
            args: vec!["run".into(), function_dir.join(file).display().to_string()],
            compiled: false,
            compile_note: Some(format!("could not write the entry file: {error}")),
        });
    }

    let executable = build_dir.join("worker");
    let mut compile = tokio::process::Command::new(&dart);
    compile.arg("compile").arg("exe");
    if packages.is_file() {
        compile.arg(format!("--packages={}", packages.display()));
    }
    compile.arg("-o").arg(&executable).arg(&entry).current_dir(function_dir).kill_on_drop(true);
    compile.stdin(std::process::Stdio::null());
    let note = match tokio::time::timeout(COMPILE_TIMEOUT, compile.output()).await {
        Ok(Ok(output)) if output.status.success() && executable.is_file() => {
            return Ok(PreparedDart { program: executable, args: Vec::new(), compiled: true, compile_note: None });
        }
        Ok(Ok(output)) => format!(
            "dart compile exe failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).lines().last().unwrap_or_default()
        ),
        Ok(Err(error)) => format!("dart compile exe could not run: {error}"),
        Err(_) => format!("dart compile exe took longer than {COMPILE_TIMEOUT:?}"),
    };
    tracing::warn!(function_dir = %function_dir.display(), %note, "falling back to dart run");
    Ok(PreparedDart { program: dart, args: run_args, compiled: false, compile_note: Some(note) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_imports_escape_characters_dart_would_interpret() {
        let entry = render_entry(Path::new("/srv/fn's $dir/main.dart"), "handle", Path::new("/opt/a/adapter.dart"));
        assert!(entry.contains("containerpub.serve(function.handle)"), "{entry}");
        assert!(entry.contains("import 'file:///srv/fn%27s%20%24dir/main.dart' as function;"), "{entry}");
        assert!(entry.contains("import 'file:///opt/a/adapter.dart' as containerpub;"));
    }
}
