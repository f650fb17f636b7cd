//! `denied-package`: a dependency on a package that wraps denied APIs.
use super::RuleInfo;
use crate::report::Severity;

/// Packages denied by default (configurable with `--allow-dependency` / `--deny-dependency`).
pub const DEFAULT_DENIED: [&str; 8] = ["process_run", "ffi", "process", "shell", "dcli", "win32", "posix", "ffigen"];

pub const RULE: RuleInfo = RuleInfo {
    id: "denied-package",
    severity: Severity::Error,
    layer: "dart",
    summary: "depends on or imports a package that wraps denied APIs",
    what: "A `pubspec.yaml` dependency (or dev dependency) on a denied package, or an import of `package:<denied>/…`.",
    why: "Packages such as `process_run` and `ffi` exist to do what functions may not; their sources are not uploaded, so the gate judges them by name.",
    example: "dependencies:\n  process_run: ^1.0.0",
    instead: "Remove the dependency; if the package is safe for your platform, the operator can allow it with `--allow-dependency NAME`.",
};
