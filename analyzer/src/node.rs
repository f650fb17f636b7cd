//! The Node layer: denied core modules, native code, servers, and the entry (`node_entry`).

use tree_sitter::Node;

use crate::package::Package;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{native_code, node_denied_module, node_server};
use crate::syntax::{parse_files, plain_string, text, walk};
use crate::{node_entry, EntrySpec, DEFAULT_FUNCTION};

pub fn analyze(package: &Package, explicit: Option<&EntrySpec>, findings: &mut Vec<Finding>) -> Option<Entry> {
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
    let file = node_entry::entry_file(package, explicit, findings)?;
    let function = explicit.map_or(DEFAULT_FUNCTION, EntrySpec::function);
    match files.iter().find(|parsed| parsed.relative == file) {
        Some(parsed) => crate::named_function_exists(node_entry::entry_hint(parsed, function), explicit, findings),
        // An entry that is not JavaScript by its name (`main: "server"` resolved to a file without
        // an extension is still read by Node as CommonJS): loading it decides.
        None => Some(Entry::new(
            &file,
            function,
            EntryMode::Handler,
            format!("{file} is not read as JavaScript here: loading it decides"),
        )),
    }
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
