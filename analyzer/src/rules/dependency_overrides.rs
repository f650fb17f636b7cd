//! `dependency-overrides`: `dependency_overrides` in `pubspec.yaml`.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "dependency-overrides",
    severity: Severity::Error,
    layer: "dart",
    summary: "pubspec.yaml overrides dependencies",
    what: "A `dependency_overrides` section (allowed with `--allow-dependency-overrides`).",
    why: "Overrides can swap any package, transitive ones included, for another source after the dependency check.",
    example: "dependency_overrides:\n  http:\n    git: https://example.com/evil-http.git",
    instead: "Depend on released versions; remove the overrides before deploying.",
};
