//! Every rule the analyzer applies, one file each. A rule's constant is its documentation:
//! `containerpub-analyzer rules` prints it, SARIF output carries it.

use crate::report::{Finding, Severity};

pub mod build_hooks;
pub mod denied_io_member;
pub mod denied_library;
pub mod denied_package;
pub mod dependency_overrides;
pub mod file_outside_package;
pub mod file_too_large;
pub mod import_outside_package;
pub mod missing_entry;
pub mod missing_function_annotation;
pub mod native_code;
pub mod node_denied_module;
pub mod node_server;
pub mod non_hosted_dependency;
pub mod non_literal_path;
pub mod parse_error;
pub mod pubspec_invalid;
pub mod python_denied_module;
pub mod python_process_call;
pub mod symlink_in_package;
pub mod unanalyzed_import;
pub mod uri_interpolation;

/// A rule and its documentation.
#[derive(Debug)]
pub struct RuleInfo {
    pub id: &'static str,
    pub severity: Severity,
    /// Which runtimes the rule applies to.
    pub layer: &'static str,
    pub summary: &'static str,
    pub what: &'static str,
    pub why: &'static str,
    pub example: &'static str,
    pub instead: &'static str,
}

impl RuleInfo {
    /// A finding of this rule; `help` defaults to the rule's "instead".
    pub fn at(&self, file: &str, line: usize, column: usize, message: impl Into<String>) -> Finding {
        Finding {
            rule: self.id,
            severity: self.severity,
            file: file.to_string(),
            line,
            column,
            message: message.into(),
            help: self.instead.to_string(),
        }
    }

    /// The same with a specific help text.
    pub fn at_with_help(
        &self,
        file: &str,
        line: usize,
        column: usize,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Finding {
        Finding { help: help.into(), ..self.at(file, line, column, message) }
    }
}

/// Every rule, in the order `rules` prints them.
pub const ALL: [&RuleInfo; 22] = [
    &parse_error::RULE,
    &missing_entry::RULE,
    &missing_function_annotation::RULE,
    &denied_library::RULE,
    &uri_interpolation::RULE,
    &import_outside_package::RULE,
    &unanalyzed_import::RULE,
    &denied_io_member::RULE,
    &file_outside_package::RULE,
    &non_literal_path::RULE,
    &denied_package::RULE,
    &non_hosted_dependency::RULE,
    &dependency_overrides::RULE,
    &build_hooks::RULE,
    &pubspec_invalid::RULE,
    &file_too_large::RULE,
    &symlink_in_package::RULE,
    &native_code::RULE,
    &node_denied_module::RULE,
    &node_server::RULE,
    &python_denied_module::RULE,
    &python_process_call::RULE,
];

pub fn find(id: &str) -> Option<&'static RuleInfo> {
    ALL.iter().copied().find(|rule| rule.id == id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_rule_is_documented_and_ids_are_unique() {
        let mut ids = std::collections::HashSet::new();
        for rule in super::ALL {
            assert!(ids.insert(rule.id), "duplicate rule id {}", rule.id);
            for (field, text) in [
                ("summary", rule.summary),
                ("what", rule.what),
                ("why", rule.why),
                ("example", rule.example),
                ("instead", rule.instead),
            ] {
                assert!(!text.trim().is_empty(), "{} has no {field}", rule.id);
            }
        }
    }
}
