//! `non-literal-path`: file system access with a computed path (a warning).
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "non-literal-path",
    severity: Severity::Warning,
    layer: "dart",
    summary: "file system access with a path computed at run time",
    what: "`File`, `Directory` or `FileSystemEntity` called with anything but a string literal, and `File.fromUri` / `File.fromRawPath`.",
    why: "The analyzer cannot tell where a computed path points; the OS sandbox still confines it, but a reviewer should look.",
    example: "File(body['path']).readAsStringSync();",
    instead: "Prefer literal relative paths; validate computed ones against the function's directory.",
};
