//! `non-hosted-dependency`: `path:` and `git:` dependencies.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "non-hosted-dependency",
    severity: Severity::Error,
    layer: "dart",
    summary: "a dependency comes from a path or a git repository",
    what: "`path:` and `git:` dependencies in `pubspec.yaml` (allowed with `--allow-path-dependencies` / `--allow-git-dependencies`).",
    why: "Their code is not in the upload and not from the package registry: the gate can neither read it nor judge it by name.",
    example: "dependencies:\n  helpers:\n    path: ../helpers",
    instead: "Publish the package, or copy its sources into this package so they are analyzed.",
};
