//! `symlink-in-package`: a symbolic link inside the package.
use super::RuleInfo;
use crate::report::Severity;

pub const RULE: RuleInfo = RuleInfo {
    id: "symlink-in-package",
    severity: Severity::Error,
    layer: "dart, node, python",
    summary: "the package contains a symbolic link",
    what: "Any symbolic link, to a file or a directory, anywhere in the package.",
    why: "Compilers and interpreters follow links; the analyzer does not, so a link would let code or data from anywhere on the machine in unread. The platform's upload refuses links too.",
    example: "lib/helpers.dart -> /opt/other-tenant/lib/secrets.dart",
    instead: "Copy the file into the package instead of linking to it.",
};
