//! `denied-library`: an import or export of an SDK library functions may not use.
use super::RuleInfo;
use crate::report::Severity;

/// Libraries denied whole, with why.
pub const DENIED: [(&str, &str); 6] = [
    ("dart:ffi", "calls native code"),
    ("dart:mirrors", "reflects over and invokes arbitrary code"),
    ("dart:isolate", "spawns isolates, including from URIs (`Isolate.spawnUri`)"),
    ("dart:developer", "controls the VM service (`Service.controlWebServer`)"),
    ("dart:cli", "blocks the VM and exits"),
    ("dart:nativewrappers", "wraps native objects"),
];

/// Why a `dart:` library is denied, or `None` when it is allowed. Private SDK libraries
/// (`dart:_…`) are always denied.
pub fn reason(uri: &str) -> Option<&'static str> {
    if uri.starts_with("dart:_") {
        return Some("is private to the SDK");
    }
    DENIED.iter().find(|(library, _)| *library == uri).map(|(_, why)| *why)
}

pub const RULE: RuleInfo = RuleInfo {
    id: "denied-library",
    severity: Severity::Error,
    layer: "dart",
    summary: "imports or exports a denied SDK library",
    what: "`dart:ffi`, `dart:mirrors`, `dart:isolate`, `dart:developer`, `dart:cli`, `dart:nativewrappers` and any private `dart:_…` library, however the URI is spelled (raw, adjacent literals, escapes, triple quotes) and in every conditional-import alternative.",
    why: "Each reaches past the platform's sandbox: native code, reflection, new isolates loaded from anywhere, control of the VM service.",
    example: "import 'dart:' 'ffi';",
    instead: "Remove the import. Use `package:http` or `HttpClient` for network access; keep computation in Dart.",
};
