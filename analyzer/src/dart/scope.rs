//! Finding references to tracked `dart:io` names, with Dart's shadowing: a declaration of the
//! library, of an enclosing class, function, block, loop or catch clause hides the import.

use std::collections::HashMap;

use tree_sitter::Node;

use super::{denied_io_member, is_tracked, paths, DartFile, Names};
use crate::report::Finding;
use crate::syntax::text;

/// What a library's imports bring in, after its own declarations shadowed them.
#[derive(Debug, Default)]
pub struct ImportScope {
    pub unprefixed: Names,
    pub prefixed: HashMap<String, Names>,
}

/// Names declared at the top level of a file (classes, functions, variables, typedefs, …).
pub fn top_level_names(file: &DartFile) -> Vec<String> {
    let mut names = Vec::new();
    let root = file.tree.root_node();
    let mut cursor = root.walk();
    for declaration in root.named_children(&mut cursor) {
        collect_declared(declaration, &file.source, 3, &mut names);
    }
    names
}

/// Collects names declared by `node` (looking `depth` levels down), without entering bodies.
fn collect_declared(node: Node, source: &str, depth: usize, names: &mut Vec<String>) {
    if let Some(name) = node.child_by_field_name("name") {
        if matches!(name.kind(), "identifier" | "type_identifier") {
            names.push(text(name, source).to_string());
        }
    }
    match node.kind() {
        "type_alias" => {
            let mut cursor = node.walk();
            let alias = node.named_children(&mut cursor).find(|child| child.kind() == "type_identifier");
            if let Some(alias) = alias {
                names.push(text(alias, source).to_string());
            }
        }
        "initialized_identifier" | "variable_pattern" => {
            let mut cursor = node.walk();
            let identifier = node.named_children(&mut cursor).find(|child| child.kind() == "identifier");
            if let Some(identifier) = identifier {
                names.push(text(identifier, source).to_string());
            }
        }
        _ => {}
    }
    if depth == 0 {
        return;
    }
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if !matches!(child.kind(), "function_body" | "block" | "class_body" | "formal_parameter_list") {
            collect_declared(child, source, depth - 1, names);
        }
    }
}

/// Reports every reference in the file that resolves to a tracked `dart:io` name.
pub fn find_references(file: &DartFile, scope: &ImportScope, findings: &mut Vec<Finding>) {
    if scope.unprefixed.is_empty() && scope.prefixed.values().all(|names| names.is_empty()) {
        return;
    }
    let source = file.source.as_str();
    let mut cursor = file.tree.walk();
    'walk: loop {
        let node = cursor.node();
        if matches!(node.kind(), "identifier" | "type_identifier") && is_tracked(text(node, source)) {
            let name = text(node, source);
            if let Some(context) = resolve(node, name, source, scope) {
                let position = node.start_position();
                if let Some(why) = denied_io_member::reason(name) {
                    findings.push(denied_io_member::RULE.at(
                        &file.relative,
                        position.row + 1,
                        position.column + 1,
                        format!("`{name}` from dart:io {why}"),
                    ));
                } else {
                    paths::check_file_system_use(context, name, file, findings);
                }
            }
        }
        if cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
}

/// If `node` refers to the tracked `dart:io` name `name`, the node that stands for the reference
/// (the identifier, or `prefix.Name`).
fn resolve<'t>(node: Node<'t>, name: &str, source: &str, scope: &ImportScope) -> Option<Node<'t>> {
    let parent = node.parent()?;
    let parent_kind = parent.kind();
    // Not references: labels (`exit: 1`), combinators, selectors after `.`/`?.`/`..`, and the
    // names being declared.
    if matches!(parent_kind, "label" | "combinator" | "import_specification" | "library_export" | "catch_clause")
        || parent_kind.contains("selector")
        || (parent.child_by_field_name("name") == Some(node) && parent_kind != "annotation")
    {
        return None;
    }
    if parent_kind == "type_alias" {
        let mut cursor = parent.walk();
        if parent.named_children(&mut cursor).find(|child| child.kind() == "type_identifier") == Some(node) {
            return None;
        }
    }
    // `prefix.Name` in an expression.
    if parent_kind == "member_expression" && parent.child_by_field_name("property") == Some(node) {
        let object = parent.child_by_field_name("object")?;
        return prefixed(object, name, source, scope).then_some(parent);
    }
    // `prefix.Name` in a type: `type_identifier . type_identifier`.
    if node.kind() == "type_identifier" {
        if let Some(dot) = node.prev_sibling().filter(|dot| dot.kind() == ".") {
            let prefix = dot.prev_sibling()?;
            return prefixed(prefix, name, source, scope).then_some(node);
        }
    }
    (scope.unprefixed.contains(name) && !shadowed(node, name, source)).then_some(node)
}

fn prefixed(prefix: Node, name: &str, source: &str, scope: &ImportScope) -> bool {
    let prefix_name = text(prefix, source);
    matches!(prefix.kind(), "identifier" | "type_identifier")
        && scope.prefixed.get(prefix_name).is_some_and(|names| names.contains(name))
        && !shadowed(prefix, prefix_name, source)
}

/// True when an enclosing class, function, block, loop or catch clause declares `name`.
fn shadowed(node: Node, name: &str, source: &str) -> bool {
    let mut current = node.parent();
    while let Some(scope) = current {
        if scope.kind() == "source_file" {
            return false;
        }
        if declares(scope, name, source) {
            return true;
        }
        current = scope.parent();
    }
    false
}

fn declares(scope: Node, name: &str, source: &str) -> bool {
    let mut names = Vec::new();
    match scope.kind() {
        "block" => {
            let mut cursor = scope.walk();
            for statement in scope.named_children(&mut cursor) {
                if matches!(statement.kind(), "local_variable_declaration" | "local_function_declaration") {
                    collect_declared(statement, source, 4, &mut names);
                }
            }
            // `catch (e, s) { … }`: the clause declares names for the block after it.
            if let Some(clause) = scope.prev_named_sibling().filter(|clause| clause.kind() == "catch_clause") {
                let mut cursor = clause.walk();
                names.extend(
                    clause
                        .named_children(&mut cursor)
                        .filter(|n| n.kind() == "identifier")
                        .map(|n| text(n, source).to_string()),
                );
            }
        }
        "class_body" | "enum_body" | "extension_body" | "mixin_declaration" => {
            let mut cursor = scope.walk();
            for member in scope.named_children(&mut cursor) {
                collect_declared(member, source, 4, &mut names);
            }
        }
        "for_statement" | "for_element" => {
            let mut cursor = scope.walk();
            let children: Vec<Node> = scope.children(&mut cursor).collect();
            for (index, child) in children.iter().enumerate() {
                let before_in = children.get(index + 1).is_some_and(|next| next.kind() == "in");
                if child.kind() == "identifier" && before_in {
                    names.push(text(*child, source).to_string());
                } else if !matches!(child.kind(), "block" | "identifier") {
                    collect_declared(*child, source, 3, &mut names);
                }
            }
        }
        _ => {
            // Functions, methods, constructors, closures: their parameters.
            if let Some(parameters) = parameter_list(scope) {
                collect_parameters(parameters, source, &mut names);
            }
        }
    }
    names.iter().any(|declared| declared == name)
}

/// The formal parameter list of a function-like node (directly, or in its signature).
fn parameter_list(node: Node) -> Option<Node> {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        if child.kind() == "formal_parameter_list" {
            return Some(child);
        }
        if child.kind().ends_with("signature") {
            let mut inner = child.walk();
            let found = child.named_children(&mut inner).find_map(|grandchild| {
                if grandchild.kind() == "formal_parameter_list" {
                    Some(grandchild)
                } else if grandchild.kind().ends_with("signature") {
                    parameter_list(grandchild)
                } else {
                    None
                }
            });
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

fn collect_parameters(list: Node, source: &str, names: &mut Vec<String>) {
    let mut pending = vec![list];
    while let Some(node) = pending.pop() {
        if node.kind() == "formal_parameter" {
            if let Some(name) = node.child_by_field_name("name") {
                names.push(text(name, source).to_string());
                continue;
            }
        }
        let mut cursor = node.walk();
        pending.extend(
            node.named_children(&mut cursor).filter(|child| !matches!(child.kind(), "function_body" | "block")),
        );
    }
}
