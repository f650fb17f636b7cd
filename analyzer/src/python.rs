//! The Python layer: denied modules (also through `__import__` and `importlib`), process and
//! socket-server calls, and the entry.

use std::collections::HashSet;

use tree_sitter::Node;

use crate::package::Package;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{missing_entry, python_denied_module, python_process_call};
use crate::syntax::{parse_files, plain_string, text, walk};

pub fn analyze(package: &Package, findings: &mut Vec<Finding>) -> Option<Entry> {
    let files = parse_files(package, &[".py"], tree_sitter_python::LANGUAGE.into(), findings);
    for file in &files {
        let source = file.source.as_str();
        // Names bound to the `os` and `socket` modules (`import os as o`).
        let mut os_names: HashSet<String> = HashSet::new();
        let mut socket_imported = false;
        walk(file.tree.root_node(), |node| {
            let position = node.start_position();
            let (line, column) = (position.row + 1, position.column + 1);
            let denied = |module: &str| {
                python_denied_module::reason(module)
                    .map(|why| python_denied_module::RULE.at(&file.relative, line, column, format!("`{module}` {why}")))
            };
            match node.kind() {
                "import_statement" => {
                    let mut cursor = node.walk();
                    for imported in node.named_children(&mut cursor) {
                        let (module, alias) = match imported.kind() {
                            "aliased_import" => (
                                imported.child_by_field_name("name").map(|name| text(name, source)),
                                imported.child_by_field_name("alias").map(|alias| text(alias, source)),
                            ),
                            "dotted_name" => (Some(text(imported, source)), None),
                            _ => (None, None),
                        };
                        let Some(module) = module else { continue };
                        findings.extend(denied(module));
                        if module == "os" {
                            os_names.insert(alias.unwrap_or("os").to_string());
                        }
                        socket_imported |= module == "socket";
                    }
                }
                "import_from_statement" => {
                    let Some(module) = node.child_by_field_name("module_name").map(|module| text(module, source))
                    else {
                        return;
                    };
                    findings.extend(denied(module));
                    socket_imported |= module == "socket";
                    let mut cursor = node.walk();
                    for name in node.children_by_field_name("name", &mut cursor) {
                        let imported = name.child_by_field_name("name").unwrap_or(name);
                        let imported = text(imported, source);
                        findings.extend(denied(&format!("{module}.{imported}")));
                        if module == "os" && python_process_call::is_denied_os_attribute(imported) {
                            findings.push(python_process_call::RULE.at(
                                &file.relative,
                                line,
                                column,
                                format!("`os.{imported}` starts or signals processes"),
                            ));
                        }
                    }
                }
                "call" => {
                    let Some(function) = node.child_by_field_name("function") else { return };
                    let function_text = text(function, source);
                    if matches!(function_text, "__import__" | "importlib.import_module" | "import_module") {
                        if let Some(module) = first_string_argument(node, source) {
                            findings.extend(denied(&module));
                        }
                    }
                    if socket_imported && function.kind() == "attribute" {
                        let attribute =
                            function.child_by_field_name("attribute").map(|attribute| text(attribute, source));
                        if matches!(attribute, Some("bind" | "listen")) {
                            findings.push(python_process_call::RULE.at(
                                &file.relative,
                                line,
                                column,
                                "a socket that binds or listens accepts connections",
                            ));
                        }
                    }
                }
                "attribute" => {
                    let object = node.child_by_field_name("object").map(|object| text(object, source));
                    let attribute = node.child_by_field_name("attribute").map(|attribute| text(attribute, source));
                    if let (Some(object), Some(attribute)) = (object, attribute) {
                        if os_names.contains(object) && python_process_call::is_denied_os_attribute(attribute) {
                            findings.push(python_process_call::RULE.at(
                                &file.relative,
                                line,
                                column,
                                format!("`os.{attribute}` starts or signals processes"),
                            ));
                        }
                    }
                }
                _ => {}
            }
        });
    }
    let Some(main) = files.iter().find(|file| file.relative == "main.py") else {
        findings.push(missing_entry::RULE.at_with_help(
            "main.py",
            1,
            1,
            "the package has no main.py at its root",
            "Define `def handler(body):` in main.py.",
        ));
        return None;
    };
    let root = main.tree.root_node();
    let mut cursor = root.walk();
    let defines_handler = root.named_children(&mut cursor).any(|statement| {
        let definition = if statement.kind() == "decorated_definition" {
            statement.child_by_field_name("definition")
        } else {
            Some(statement)
        };
        definition.is_some_and(|definition| {
            definition.kind() == "function_definition"
                && definition.child_by_field_name("name").is_some_and(|name| text(name, &main.source) == "handler")
        })
    });
    Some(Entry { file: "main.py".into(), mode: if defines_handler { EntryMode::Handler } else { EntryMode::Main } })
}

fn first_string_argument(call: Node, source: &str) -> Option<String> {
    let arguments = call.child_by_field_name("arguments")?;
    let mut cursor = arguments.walk();
    let first = arguments.named_children(&mut cursor).next()?;
    (first.kind() == "string").then(|| plain_string(first, source)).flatten()
}
