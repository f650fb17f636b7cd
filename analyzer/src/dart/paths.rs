//! `File`, `Directory` and `FileSystemEntity` from `dart:io`: where do their paths point?

use tree_sitter::Node;

use super::strings::{decode_string_literal, StringValue};
use super::DartFile;
use crate::package::normalize;
use crate::report::Finding;
use crate::rules::{file_outside_package, non_literal_path};

/// `reference` is the identifier `File` (or `io.File`) that resolved to `dart:io`.
pub fn check_file_system_use(reference: Node, name: &str, file: &DartFile, findings: &mut Vec<Finding>) {
    let Some(parent) = reference.parent() else { return };
    let position = reference.start_position();
    let (line, column) = (position.row + 1, position.column + 1);
    match parent.kind() {
        // `File('…')`: the first argument is the path.
        "call_expression"
            if parent.child_by_field_name("function") == Some(reference) && name != "FileSystemEntity" =>
        {
            check_path_argument(parent, name, file, line, column, findings);
        }
        // `Directory.current`, `File.fromUri(…)`, `FileSystemEntity.isFile('…')`.
        "member_expression" if parent.child_by_field_name("object") == Some(reference) => {
            let member = parent
                .child_by_field_name("property")
                .map(|property| &file.source[property.byte_range()])
                .unwrap_or("");
            if name == "Directory" && matches!(member, "current" | "systemTemp") {
                findings.push(file_outside_package::RULE.at(
                    &file.relative,
                    line,
                    column,
                    format!("`Directory.{member}` is outside the function's directory"),
                ));
                return;
            }
            let Some(call) = parent.parent().filter(|call| {
                call.kind() == "call_expression" && call.child_by_field_name("function") == Some(parent)
            }) else {
                return;
            };
            if matches!(member, "fromUri" | "fromRawPath") {
                findings.push(non_literal_path::RULE.at(
                    &file.relative,
                    line,
                    column,
                    format!("`{name}.{member}` takes a computed path"),
                ));
            } else {
                check_path_argument(call, &format!("{name}.{member}"), file, line, column, findings);
            }
        }
        _ => {}
    }
}

fn check_path_argument(
    call: Node,
    what: &str,
    file: &DartFile,
    line: usize,
    column: usize,
    findings: &mut Vec<Finding>,
) {
    let Some(arguments) = call.child_by_field_name("arguments") else { return };
    let mut cursor = arguments.walk();
    let Some(first) = arguments.named_children(&mut cursor).find(|argument| argument.kind() != "named_argument") else {
        return;
    };
    let path = match first.kind() {
        "string_literal" => decode_string_literal(first, &file.source),
        _ => StringValue::Interpolated,
    };
    match path {
        StringValue::Constant(path) if path.starts_with('/') || normalize(&path).is_none() => {
            findings.push(file_outside_package::RULE.at(
                &file.relative,
                line,
                column,
                format!("`{what}('{path}')` is outside the function's directory"),
            ));
        }
        StringValue::Constant(_) => {}
        StringValue::Interpolated => {
            findings.push(non_literal_path::RULE.at(
                &file.relative,
                line,
                column,
                format!("`{what}` is called with a computed path"),
            ));
        }
    }
}
