//! `file-too-large`: a source file over the size the analyzer reads.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "file-too-large",
    severity: Severity::Error,
    layer: "dart, node, python",
    summary: "a source file is larger than 8 MiB",
    what: "Any `.dart`, `.js`, `.mjs`, `.cjs` or `.py` file over 8 MiB.",
    why:
        "Generated or minified code this large is not reviewable, and reading it would let one upload pin the analyzer.",
    example: "lib/generated.dart (40 MB)",
    instead: "Split the file, or leave generated data out of the source tree (load it as a data file).",
};
