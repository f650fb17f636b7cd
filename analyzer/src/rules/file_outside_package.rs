//! `file-outside-package`: file system access outside the function's own directory.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "file-outside-package",
    severity: Severity::Error,
    layer: "dart",
    summary: "file system access outside the function's directory",
    what: "`File`, `Directory` and `FileSystemEntity` from `dart:io` used with a literal absolute path or one that climbs out with `..`, and `Directory.current` / `Directory.systemTemp`.",
    why: "A function's working directory is its own directory; everything else on the server belongs to someone else.",
    example: "File('/etc/passwd').readAsStringSync();",
    instead: "Use paths relative to the function's directory (`File('data/config.json')`).",
};
