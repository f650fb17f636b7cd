//! `native-code`: native binaries and the APIs that load them (Node addons, shared objects).
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "native-code",
    severity: Severity::Error,
    layer: "node, python, dart",
    summary: "ships or loads native code",
    what: "Native addons and shared libraries in the package (`.node`, `.so`, `.dylib`, `.dll`), and in Node `process.binding`, `process._linkedBinding`, `process.dlopen`. In installed packages (`node_modules/`, pip's distributions) a warning unless `[analyzer] deny_native_dependencies`.",
    why: "Native code runs outside every language-level check.",
    example: "const addon = require('./build/Release/addon.node');",
    instead: "Use a pure-JavaScript or pure-Python package.",
};
