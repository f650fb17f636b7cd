//! `pubspec-invalid`: a `pubspec.yaml` that cannot be read.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "pubspec-invalid",
    severity: Severity::Error,
    layer: "dart",
    summary: "pubspec.yaml cannot be read",
    what: "A `pubspec.yaml` that is not valid YAML, or whose dependency sections are not maps.",
    why: "Dependencies the gate cannot read are dependencies it cannot check.",
    example: "dependencies: [http",
    instead: "Fix the YAML (`dart pub get` reports where).",
};
