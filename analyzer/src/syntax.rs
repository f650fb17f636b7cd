//! Shared tree-sitter helpers for the Node and Python layers: parsing with syntax-error findings,
//! and an iterative walk (hostile input can nest deeply; recursion could overflow the stack).

use tree_sitter::{Language, Node, Parser, Tree};

use crate::package::{Package, PackageFile, MAX_FILE_BYTES};
use crate::report::Finding;
use crate::rules::{file_too_large, parse_error};

pub struct ParsedFile {
    pub relative: String,
    pub source: String,
    pub tree: Tree,
}

/// Reads and parses every file with one of `extensions`, reporting unreadable, oversized and
/// unparsable files.
pub fn parse_files(
    package: &Package,
    extensions: &[&str],
    language: Language,
    findings: &mut Vec<Finding>,
) -> Vec<ParsedFile> {
    let mut parser = Parser::new();
    if parser.set_language(&language).is_err() {
        return Vec::new();
    }
    let wanted = |file: &&PackageFile| extensions.iter().any(|extension| file.relative.ends_with(extension));
    let mut parsed = Vec::new();
    for file in package.files.iter().filter(wanted) {
        let Some(source) = read_source(file, findings) else { continue };
        let Some(tree) = parser.parse(&source, None) else { continue };
        report_syntax_errors(&file.relative, &source, tree.root_node(), findings);
        parsed.push(ParsedFile { relative: file.relative.clone(), source, tree });
    }
    parsed
}

/// Reads a source file for a front end; oversized and unreadable files become findings.
pub fn read_source(file: &PackageFile, findings: &mut Vec<Finding>) -> Option<String> {
    if file.size > MAX_FILE_BYTES {
        findings.push(file_too_large::RULE.at(
            &file.relative,
            1,
            1,
            format!("{} is {} bytes", file.relative, file.size),
        ));
        return None;
    }
    match std::fs::read(&file.path) {
        Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
        Err(error) => {
            findings.push(parse_error::RULE.at(&file.relative, 1, 1, format!("cannot read the file: {error}")));
            None
        }
    }
}

/// One finding per syntax error, at most 10 per file.
pub fn report_syntax_errors(relative: &str, source: &str, root: Node, findings: &mut Vec<Finding>) {
    if !root.has_error() {
        return;
    }
    let mut reported = 0;
    let mut cursor = root.walk();
    'walk: loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            let position = node.start_position();
            let snippet: String = source[node.byte_range()].chars().take(40).collect();
            let message = if node.is_missing() {
                format!("syntax error: expected `{}`", node.kind())
            } else {
                format!("syntax error near `{}`", snippet.trim())
            };
            findings.push(parse_error::RULE.at(relative, position.row + 1, position.column + 1, message));
            reported += 1;
            if reported == 10 {
                break;
            }
        } else if node.has_error() && cursor.goto_first_child() {
            continue;
        }
        while !cursor.goto_next_sibling() {
            if !cursor.goto_parent() {
                break 'walk;
            }
        }
    }
}

/// Calls `visit` on every node, in document order, without recursion.
pub fn walk<'t>(root: Node<'t>, mut visit: impl FnMut(Node<'t>)) {
    let mut cursor = root.walk();
    loop {
        visit(cursor.node());
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return;
            }
        }
    }
}

pub fn text<'s>(node: Node, source: &'s str) -> &'s str {
    &source[node.byte_range()]
}

/// The value of a string literal without escapes or substitutions (module names are plain).
pub fn plain_string(node: Node, source: &str) -> Option<String> {
    let raw = text(node, source);
    let quote = raw.chars().next()?;
    if !matches!(quote, '\'' | '"' | '`') || raw.len() < 2 || raw.contains("${") {
        return None;
    }
    Some(raw[1..raw.len() - 1].to_string())
}
