//! `import-outside-package`: a directive that reaches files outside the package.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "import-outside-package",
    severity: Severity::Error,
    layer: "dart",
    summary: "a directive loads a file outside the package",
    what: "Relative URIs that climb above the package root (`../../x.dart`), `file:` URIs, and files inside directories the analyzer never reads (`build/`, `.dart_tool/`, `node_modules/`).",
    why: "Code outside the uploaded package was not analyzed and may be anything on the server.",
    example: "import '../../../opt/other/secret.dart';",
    instead: "Keep every source file inside the package and import it relatively or as `package:<name>/…`.",
};
