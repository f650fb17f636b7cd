//! Finding the function's entry in `main.dart`: a top-level `@function` `handler` (warm) or
//! `main` (oneshot).

use tree_sitter::Node;

use super::DartFile;
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::{missing_entry, missing_function_annotation};

pub fn find_entry(main: Option<&DartFile>, findings: &mut Vec<Finding>) -> Option<Entry> {
    let Some(main) = main else {
        findings.push(missing_entry::RULE.at("main.dart", 1, 1, "the package has no main.dart at its root"));
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
    if annotated("handler") {
        return Some(Entry { file: "main.dart".into(), mode: EntryMode::Handler });
    }
    if annotated("main") {
        return Some(Entry { file: "main.dart".into(), mode: EntryMode::Main });
    }
    let (line, column, message) = match candidates.iter().find(|(name, _, _)| name == "handler" || name == "main") {
        Some((name, _, node)) => {
            let position = node.start_position();
            (position.row + 1, position.column + 1, format!("`{name}` is not annotated with `@function`"))
        }
        None => (1, 1, "main.dart has no top-level `handler` or `main` function".to_string()),
    };
    findings.push(missing_function_annotation::RULE.at("main.dart", line, column, message));
    None
}
