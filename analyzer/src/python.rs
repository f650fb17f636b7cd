//! The Python layer: denied modules (also through `__import__` and `importlib`), process and
//! socket-server calls, and the entry.

use std::collections::HashSet;

use tree_sitter::Node;

use crate::dependencies::Dependencies;
use crate::package::Package;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{missing_entry, python_denied_module, python_process_call};
use crate::syntax::{parse_files_where, plain_string, text, walk, ParsedFile};
use crate::{EntrySpec, DEFAULT_FUNCTION};

pub fn analyze(
    package: &Package,
    explicit: Option<&EntrySpec>,
    dependencies: &Dependencies,
    findings: &mut Vec<Finding>,
) -> Option<Entry> {
    // Installed packages are read line by line (their findings are warnings, see
    // `dependencies`): parsing thousands of their files would cost seconds per deploy.
    let files = parse_files_where(package, &[".py"], tree_sitter_python::LANGUAGE.into(), findings, |relative| {
        dependencies.owner(relative).is_none()
    });
    scan_dependencies(package, dependencies, findings);
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
                    // `from M import A, B`: each `M.A` is judged below, so a module whose only
                    // names imported are allowed ones is not refused as a whole.
                    let mut names_cursor = node.walk();
                    let named: Vec<String> = node
                        .children_by_field_name("name", &mut names_cursor)
                        .map(|name| text(name.child_by_field_name("name").unwrap_or(name), source))
                        .map(|imported| format!("{module}.{imported}"))
                        .collect();
                    let only_allowed = !named.is_empty()
                        && named.iter().all(|name| python_denied_module::ALLOWED.contains(&name.as_str()));
                    if !only_allowed {
                        findings.extend(denied(module));
                    }
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
    let found = match explicit {
        // A file named without a function: its function found as a default file's is.
        Some(explicit) => files.iter().find(|file| file.relative == explicit.file).map(|file| {
            let function = explicit.function.clone().unwrap_or_else(|| default_function(file));
            (file, function)
        }),
        None => DEFAULT_FILES.iter().find_map(|wanted| {
            let file = files.iter().find(|file| file.relative == *wanted)?;
            Some((file, default_function(file)))
        }),
    };
    let Some((main, function)) = found else {
        let (message, help) = match explicit {
            None => (
                format!("the package has none of {} at its root", DEFAULT_FILES.join(", ")),
                "Define `def handler(body):` in main.py, or name the entry: `--entry FILE:FUNCTION` (for example `--entry app.py:handler`).".to_string(),
            ),
            Some(explicit) => {
                (format!("the package has no {} (named as the entry)", explicit.file), "Name a .py file of the package.".into())
            }
        };
        let wanted = explicit.map_or("main.py", |explicit| explicit.file.as_str());
        findings.push(missing_entry::RULE.at_with_help(wanted, 1, 1, message, help));
        return None;
    };
    crate::named_function_exists(entry_hint(main, &function), explicit, findings)
}

/// The files a Python function's entry is looked for in, without `--entry`: this platform's own,
/// then Lambda's, OpenFaaS's, the usual home of a WSGI or ASGI app, Knative's and Appwrite's.
pub const DEFAULT_FILES: [&str; 8] =
    ["main.py", "lambda_function.py", "handler.py", "app.py", "index.py", "func.py", "function/func.py", "src/main.py"];

/// The names a default entry file's function is looked for under, in order: this platform's
/// `handler`, Lambda's `lambda_handler`, OpenFaaS's `handle`, a WSGI or ASGI `app`/`application`,
/// Knative's `new`. Never `main`: a script's `def main():` is no handler (OpenWhisk's and
/// Appwrite's `main(args)` is found as the file's only function taking an argument).
const DEFAULT_FUNCTIONS: [&str; 6] = [DEFAULT_FUNCTION, "lambda_handler", "handle", "app", "application", "new"];

/// The first of [`DEFAULT_FUNCTIONS`] the file binds at its top level (a `def`, a `class`, an
/// assignment or an import), else its only `@functions_framework.http` function, else its only
/// public top-level `def` that takes an argument (what a handler under another name looks like; a
/// script's `def main():` takes none), else `handler`.
fn default_function(file: &ParsedFile) -> String {
    let bound = top_level_names(file);
    if let Some(name) = DEFAULT_FUNCTIONS.into_iter().find(|name| bound.iter().any(|bound| bound == name)) {
        return name.to_string();
    }
    let functions = top_level_functions(file);
    let registered: Vec<_> = functions.iter().filter(|function| function.registered).collect();
    let taking: Vec<_> = functions.iter().filter(|function| function.takes_arguments).collect();
    match (registered.as_slice(), taking.as_slice()) {
        ([only], _) | ([], [only]) => only.name.clone(),
        _ => DEFAULT_FUNCTION.to_string(),
    }
}

/// A public function the file defines at its top level.
struct TopLevelFunction {
    name: String,
    takes_arguments: bool,
    /// Decorated with Cloud Functions' `@functions_framework.http`.
    registered: bool,
}

/// The public functions the file defines at its top level.
fn top_level_functions(file: &ParsedFile) -> Vec<TopLevelFunction> {
    let root = file.tree.root_node();
    let mut cursor = root.walk();
    root.named_children(&mut cursor)
        .filter_map(|node| match node.kind() {
            "function_definition" => Some((node, false)),
            "decorated_definition" => {
                let registered = text(node, &file.source).trim_start().starts_with("@functions_framework.http");
                node.child_by_field_name("definition")
                    .filter(|inner| inner.kind() == "function_definition")
                    .map(|inner| (inner, registered))
            }
            _ => None,
        })
        .filter_map(|(definition, registered)| {
            let name = text(definition.child_by_field_name("name")?, &file.source).to_string();
            let takes_arguments = definition
                .child_by_field_name("parameters")
                .is_some_and(|parameters| parameters.named_child_count() > 0);
            (!name.starts_with('_')).then_some(TopLevelFunction { name, takes_arguments, registered })
        })
        .collect()
}

fn top_level_names(file: &ParsedFile) -> Vec<String> {
    let root = file.tree.root_node();
    let mut cursor = root.walk();
    let mut names = Vec::new();
    for node in root.named_children(&mut cursor) {
        let node = if node.kind() == "decorated_definition" {
            node.child_by_field_name("definition").unwrap_or(node)
        } else {
            node
        };
        match node.kind() {
            "function_definition" | "class_definition" => {
                names.extend(node.child_by_field_name("name").map(|name| text(name, &file.source).to_string()))
            }
            "expression_statement" => {
                let mut inner = node.walk();
                for assignment in node.named_children(&mut inner).filter(|child| child.kind() == "assignment") {
                    let left = assignment.child_by_field_name("left");
                    names.extend(
                        left.filter(|left| left.kind() == "identifier")
                            .map(|left| text(left, &file.source).to_string()),
                    );
                }
            }
            "import_from_statement" => {
                let mut inner = node.walk();
                for name in node.children_by_field_name("name", &mut inner) {
                    let bound =
                        name.child_by_field_name("alias").or_else(|| name.child_by_field_name("name")).unwrap_or(name);
                    names.push(text(bound, &file.source).to_string());
                }
            }
            _ => {}
        }
    }
    names
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

/// The rules, read line by line, for a file of an installed package: `import` and `from … import`
/// of denied modules (also through `__import__` and `importlib.import_module` with a literal),
/// `os` calls that start processes, and a socket's `bind`/`listen` in a file that imports
/// `socket`. Coarser than the syntax tree (a line inside a string can match): its findings are
/// warnings.
/// Every installed package's Python files, read line by line (`scan_installed`).
pub fn scan_dependencies(package: &Package, dependencies: &Dependencies, findings: &mut Vec<Finding>) {
    for file in package.with_extension("py").filter(|file| dependencies.owner(&file.relative).is_some()) {
        if let Some(source) = crate::syntax::read_source(file, findings) {
            scan_installed(&file.relative, &source, findings);
        }
    }
}

fn scan_installed(relative: &str, source: &str, findings: &mut Vec<Finding>) {
    let imports_socket = source.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("import socket") || line.starts_with("from socket import")
    });
    for (index, line) in source.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        let column = line.len() - trimmed.len() + 1;
        let modules: Vec<&str> = if let Some(rest) = trimmed.strip_prefix("import ") {
            rest.split(',').filter_map(|part| part.split_whitespace().next()).collect()
        } else if let Some(rest) = trimmed.strip_prefix("from ") {
            rest.split_whitespace().next().into_iter().collect()
        } else {
            Vec::new()
        };
        for module in modules {
            if let Some(why) = python_denied_module::reason(module) {
                findings.push(python_denied_module::RULE.at(relative, number, column, format!("`{module}` {why}")));
            }
        }
        for call in ["__import__(", "import_module("] {
            let Some(at) = trimmed.find(call) else { continue };
            let argument = trimmed[at + call.len()..].trim_start();
            let quote = argument.chars().next().filter(|quote| *quote == '"' || *quote == '\'');
            let module = quote.and_then(|quote| argument[1..].split(quote).next());
            if let Some(why) = module.and_then(python_denied_module::reason) {
                findings.push(python_denied_module::RULE.at(
                    relative,
                    number,
                    column,
                    format!("`{}` {why}", module.unwrap_or_default()),
                ));
            }
        }
        if let Some(at) = trimmed.find("os.") {
            let name: String =
                trimmed[at + 3..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            let preceded =
                trimmed[..at].chars().next_back().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            if !preceded
                && trimmed[at + 3 + name.len()..].starts_with('(')
                && python_process_call::is_denied_os_attribute(&name)
            {
                findings.push(python_process_call::RULE.at(
                    relative,
                    number,
                    column,
                    format!("`os.{name}` starts or signals processes"),
                ));
            }
        }
        if imports_socket && (trimmed.contains(".bind(") || trimmed.contains(".listen(")) {
            findings.push(python_process_call::RULE.at(
                relative,
                number,
                column,
                "a socket that binds or listens accepts connections",
            ));
        }
    }
}

fn first_string_argument(call: Node, source: &str) -> Option<String> {
    let arguments = call.child_by_field_name("arguments")?;
    let mut cursor = arguments.walk();
    let first = arguments.named_children(&mut cursor).next()?;
    (first.kind() == "string").then(|| plain_string(first, source)).flatten()
}
