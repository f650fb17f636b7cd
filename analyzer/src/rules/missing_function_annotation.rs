//! `missing-function-annotation`: the entry has no `@function` handler or main.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "missing-function-annotation",
    severity: Severity::Error,
    layer: "dart",
    summary: "main.dart has no `@function` handler or main",
    what: "A main.dart whose top-level `handler` and `main` functions are both missing or both lack the `@function` annotation.",
    why: "The annotation marks what the platform may call, and decides how: `handler` is kept warm, `main` runs once per request.",
    example: "Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async => {...};   // no @function",
    instead: "Annotate the entry:\n\n    const function = 'function';\n\n    @function\n    Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {\n      return {'message': 'Hello, ${body['name'] ?? 'world'}!'};\n    }",
};
