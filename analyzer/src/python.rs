//! The Python layer: denied modules (also through `__import__` and `importlib`), process and
//! socket-server calls, and the entry.

use std::collections::HashSet;

use tree_sitter::Node;

use crate::package::Package;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{missing_entry, python_denied_module, python_process_call};
use crate::syntax::{parse_files, plain_string, text, walk, ParsedFile};
use crate::{EntrySpec, DEFAULT_FUNCTION};

pub fn analyze(package: &Package, explicit: Option<&EntrySpec>, findings: &mut Vec<Finding>) -> Option<Entry> {
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
    let function = explicit.map_or(DEFAULT_FUNCTION, EntrySpec::function);
    let wanted = explicit.map_or("main.py", |explicit| explicit.file.as_str());
    let Some(main) = files.iter().find(|file| file.relative == wanted) else {
        let (message, help) = match explicit {
            None => (
                "the package has no main.py at its root".to_string(),
                "Define `def handler(body):` in main.py, or name the entry: `--entry FILE:FUNCTION` (for example `--entry app.py:handler`).",
            ),
            Some(_) => (format!("the package has no {wanted} (named as the entry)"), "Name a .py file of the package."),
        };
        findings.push(missing_entry::RULE.at_with_help(wanted, 1, 1, message, help));
        return None;
    };
    crate::named_function_exists(entry_hint(main, function), explicit, findings)
}

/// What the entry's source says about the mode: a module can only bind `function` by naming it
/// (a `def`, an assignment, an import), by a string (`globals()["handler"] = …`) or by a
/// `from … import *`. A file that does none of these is a script; anything else is settled by
/// loading it.
fn entry_hint(main: &ParsedFile, function: &str) -> Entry {
    let mut mentioned = None;
    walk(main.tree.root_node(), |node| {
        if mentioned.is_some() {
            return;
        }
        mentioned = match node.kind() {
            "identifier" if text(node, &main.source) == function => Some(format!("names `{function}`")),
            "string" if plain_string(node, &main.source).as_deref() == Some(function) => {
                Some(format!("has the string {function:?}"))
            }
            "wildcard_import" => Some("has a `from … import *`".to_string()),
            _ => None,
        };
    });
    match mentioned {
        Some(how) => Entry::new(
            &main.relative,
            function,
            EntryMode::Handler,
            format!("{} {how}, so it may define `{function}`: loading it decides", main.relative),
        ),
        None => Entry::new(
            &main.relative,
            function,
            EntryMode::Main,
            format!(
                "{} never mentions `{function}`: it runs as a script, one process per call{}",
                main.relative,
                other_function_hint(main)
            ),
        ),
    }
}

/// The deploy option that serves a function the file defines at its top under another name.
fn other_function_hint(main: &ParsedFile) -> String {
    let root = main.tree.root_node();
    let mut cursor = root.walk();
    let defined: Vec<String> = root
        .named_children(&mut cursor)
        .filter_map(|node| match node.kind() {
            "function_definition" => Some(node),
            "decorated_definition" => {
                node.child_by_field_name("definition").filter(|inner| inner.kind() == "function_definition")
            }
            _ => None,
        })
        .filter_map(|definition| definition.child_by_field_name("name"))
        .map(|name| text(name, &main.source).to_string())
        .filter(|name| !name.starts_with('_'))
        .collect();
    match defined.as_slice() {
        [] => String::new(),
        [only] => format!("; to serve `{only}` warm, deploy with --entry {}:{only}", main.relative),
        several => format!(
            "; to serve one of them warm, deploy with --entry {}:NAME ({})",
            main.relative,
            several.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
        ),
    }
}

fn first_string_argument(call: Node, source: &str) -> Option<String> {
    let arguments = call.child_by_field_name("arguments")?;
    let mut cursor = arguments.walk();
    let first = arguments.named_children(&mut cursor).next()?;
    (first.kind() == "string").then(|| plain_string(first, source)).flatten()
}
