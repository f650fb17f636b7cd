//! `missing-entry`: no entry file for the runtime.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "missing-entry",
    severity: Severity::Error,
    layer: "dart, node, python",
    summary: "the package has no entry file",
    what: "A Dart package without `main.dart` at its root (Node: `index.js`, Python: `main.py`).",
    why: "The platform starts the function from its entry file; without one there is nothing to run.",
    example: "lib/handler.dart only, no main.dart",
    instead: "Put the function in main.dart at the package root (`dart_cloud init` creates one).",
};
