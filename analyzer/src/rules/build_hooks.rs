//! `build-hooks`: `hook/build.dart` and `hook/link.dart`.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "build-hooks",
    severity: Severity::Error,
    layer: "dart",
    summary: "the package has build hooks",
    what: "A `hook/` directory (`hook/build.dart`, `hook/link.dart`).",
    why: "Build hooks run arbitrary code at build time, on the build machine, before any request.",
    example: "hook/build.dart",
    instead: "Remove the hook directory; functions cannot ship native assets.",
};
