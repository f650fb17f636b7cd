//! The Node layer: denied core modules, native code, servers, and the entry.

use tree_sitter::Node;

use crate::package::Package;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{missing_entry, native_code, node_denied_module, node_server};
use crate::syntax::{parse_files, plain_string, text, walk};

pub fn analyze(package: &Package, findings: &mut Vec<Finding>) -> Option<Entry> {
    let files = parse_files(package, &[".js", ".mjs", ".cjs"], tree_sitter_javascript::LANGUAGE.into(), findings);
    for file in &files {
        let source = file.source.as_str();
        walk(file.tree.root_node(), |node| {
            let position = node.start_position();
            let (line, column) = (position.row + 1, position.column + 1);
            if let Some(module) = module_loaded(node, source) {
                if let Some(why) = node_denied_module::reason(&module) {
                    findings.push(node_denied_module::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!("`{module}` {why}"),
                    ));
                }
                if module.ends_with(".node") || module == "bindings" {
                    findings.push(native_code::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!("`{module}` loads a native addon"),
                    ));
                }
            }
            if node.kind() == "member_expression" {
                let object = node.child_by_field_name("object").map(|object| text(object, source));
                let property = node.child_by_field_name("property").map(|property| text(property, source));
                if object == Some("process") && matches!(property, Some("binding" | "_linkedBinding" | "dlopen")) {
                    findings.push(native_code::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!("`process.{}` loads native code", property.unwrap_or_default()),
                    ));
                }
                if property == Some("createServer") {
                    findings.push(node_server::RULE.at(
                        &file.relative,
                        line,
                        column,
                        "`createServer` opens a listener",
                    ));
                }
            }
        });
    }
    let Some(index) = files.iter().find(|file| file.relative == "index.js") else {
        findings.push(missing_entry::RULE.at_with_help(
            "index.js",
            1,
            1,
            "the package has no index.js at its root",
            "Export `handler` from index.js.",
        ));
        return None;
    };
    let mut exports_handler = false;
    walk(index.tree.root_node(), |node| {
        let exporting = match node.kind() {
            "export_statement" => true,
            "assignment_expression" => node.child_by_field_name("left").is_some_and(|left| {
                let left = text(left, &index.source);
                left.starts_with("exports") || left.starts_with("module.exports")
            }),
            _ => false,
        };
        if exporting && text(node, &index.source).contains("handler") {
            exports_handler = true;
        }
    });
    Some(Entry { file: "index.js".into(), mode: if exports_handler { EntryMode::Handler } else { EntryMode::Main } })
}

/// The module a node loads: `require('x')`, `import … from 'x'`, `import('x')`, `export … from 'x'`.
fn module_loaded(node: Node, source: &str) -> Option<String> {
    match node.kind() {
        "call_expression" => {
            let function = node.child_by_field_name("function")?;
            if !matches!(text(function, source), "require" | "import") {
                return None;
            }
            let arguments = node.child_by_field_name("arguments")?;
            let mut cursor = arguments.walk();
            let first = arguments.named_children(&mut cursor).next()?;
            plain_string(first, source)
        }
        "import_statement" | "export_statement" => plain_string(node.child_by_field_name("source")?, source),
        _ => None,
    }
}
