//! `uri-interpolation`: a directive URI with `$` interpolation.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "uri-interpolation",
    severity: Severity::Error,
    layer: "dart",
    summary: "a directive's URI contains interpolation",
    what: "`import`, `export` or `part` whose URI string contains `$name` or `${…}`.",
    why: "Directive URIs must be constants; a URI the analyzer cannot compute is a URI it cannot check.",
    example: "import 'dart:$lib';",
    instead: "Write the URI out as a plain string literal.",
};
