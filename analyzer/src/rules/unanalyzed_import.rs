//! `unanalyzed-import`: a directive that loads a file the analyzer does not read as Dart.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "unanalyzed-import",
    severity: Severity::Error,
    layer: "dart",
    summary: "a directive loads a file that is not a `.dart` file",
    what: "`import`, `export` or `part` of a file of the package whose name does not end in `.dart` (Dart compiles whatever the URI names).",
    why: "The analyzer reads `.dart` files; Dart source hidden in `helpers.txt` would be compiled without being checked.",
    example: "import 'assets/helpers.txt';",
    instead: "Give Dart sources the `.dart` extension.",
};
