//! `parse-error`: a source file that does not parse.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "parse-error",
    severity: Severity::Error,
    layer: "dart, node, python",
    summary: "a source file does not parse",
    what: "Any syntax error in any source file of the package, at the first place the parser could not read.",
    why: "The analyzer cannot vouch for code it cannot read, and a file the compiler reads differently from the analyzer is the classic way to smuggle code past a checker. The gate fails closed.",
    example: "void main() { print('hi') }   // missing `;`",
    instead: "Fix the syntax error (each finding names the runtime's own checker: `dart analyze`, `python3 -m py_compile`, `node --check`); if the file is not part of the function, leave it out of the upload.",
};
