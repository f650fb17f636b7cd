//! Finding the function's entry in `main.dart` (or the file the deploy named): a top-level
//! `@function` `handler` (warm) or `main` (oneshot), or the `@function` the deploy named.

use tree_sitter::Node;

use super::DartFile;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{missing_entry, missing_function_annotation};

pub fn find_entry(
    file: &str,
    main: Option<&DartFile>,
    named: Option<&str>,
    findings: &mut Vec<Finding>,
) -> Option<Entry> {
    let Some(main) = main else {
        let message = match file {
            "main.dart" => "the package has no main.dart at its root".to_string(),
            other => format!("the package has no {other} (named as the entry)"),
        };
        findings.push(missing_entry::RULE.at(file, 1, 1, message));
        return None;
    };
    let root = main.tree.root_node();
    let mut candidates: Vec<(String, bool, Node)> = Vec::new();
    let mut cursor = root.walk();
    for declaration in root.named_children(&mut cursor).filter(|node| node.kind() == "function_declaration") {
        let Some(name) = declaration
            .child_by_field_name("signature")
            .and_then(|signature| signature.child_by_field_name("name"))
            .map(|name| main.source[name.byte_range()].to_string())
        else {
            continue;
        };
        let mut inner = declaration.walk();
        let annotated = declaration.named_children(&mut inner).any(|child| {
            child.kind() == "annotation"
                && child.child_by_field_name("name").is_some_and(|name| &main.source[name.byte_range()] == "function")
        });
        candidates.push((name, annotated, declaration));
    }
    let annotated = |wanted: &str| candidates.iter().any(|(name, annotated, _)| name == wanted && *annotated);
    let warm = named.unwrap_or("handler");
    if warm != "main" && annotated(warm) {
        let reason = format!("{file} has `@function {warm}`: served warm");
        return Some(Entry::new(file, warm, EntryMode::Handler, reason));
    }
    if annotated("main") && named.is_none_or(|named| named == "main") {
        let reason = format!(
            "{file} has `@function main` and no `@function handler`: it runs as a program, one process per call"
        );
        return Some(Entry::new(file, "handler", EntryMode::Main, reason));
    }
    // A file that does not parse has its parse errors; guessing at its entry would only add a
    // finding asking for what may well be there.
    if root.has_error() {
        return None;
    }
    let wanted = |name: &str| match named {
        Some(named) => name == named,
        None => name == "handler" || name == "main",
    };
    let (line, column, message) = match candidates.iter().find(|(name, _, _)| wanted(name)) {
        Some((name, _, node)) => {
            let position = node.start_position();
            (position.row + 1, position.column + 1, format!("`{name}` is not annotated with `@function`"))
        }
        None => match named {
            Some(named) => (1, 1, format!("{file} has no top-level `{named}` function")),
            None => (1, 1, format!("{file} has no top-level `handler` or `main` function")),
        },
    };
    findings.push(missing_function_annotation::RULE.at(file, line, column, message));
    None
}
