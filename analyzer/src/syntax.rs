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
    parse_files_where(package, extensions, language, findings, |_| true)
}

/// [`parse_files`], for the files `keep` takes (by relative path) only.
pub fn parse_files_where(
    package: &Package,
    extensions: &[&str],
    language: Language,
    findings: &mut Vec<Finding>,
    keep: impl Fn(&str) -> bool,
) -> Vec<ParsedFile> {
    let mut parser = Parser::new();
    if parser.set_language(&language).is_err() {
        return Vec::new();
    }
    let wanted = |file: &&PackageFile| {
        extensions.iter().any(|extension| file.relative.ends_with(extension)) && keep(&file.relative)
    };
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

/// One finding per syntax error, at most 10 per file: at the innermost place the parser marked,
/// saying what it expected when it knows (a missing token), with the runtime's own checker as help.
pub fn report_syntax_errors(relative: &str, source: &str, root: Node, findings: &mut Vec<Finding>) {
    if !root.has_error() {
        return;
    }
    let help = checker_help(relative);
    let mut seen: Vec<(usize, usize)> = Vec::new();
    let mut cursor = root.walk();
    'walk: loop {
        let node = cursor.node();
        if node.is_error() || node.is_missing() {
            let Some((position, message)) = describe(node, source) else {
                if !cursor.goto_next_sibling() && !climb(&mut cursor) {
                    break 'walk;
                }
                continue;
            };
            let place = (position.row + 1, position.column + 1);
            if !seen.contains(&place) {
                seen.push(place);
                findings.push(parse_error::RULE.at_with_help(relative, place.0, place.1, message, help.clone()));
                if seen.len() == 10 {
                    break;
                }
            }
        } else if node.has_error() && cursor.goto_first_child() {
            continue;
        }
        if !cursor.goto_next_sibling() && !climb(&mut cursor) {
            break 'walk;
        }
    }
}

/// Up to the next unvisited sibling of an ancestor; false at the root.
fn climb(cursor: &mut tree_sitter::TreeCursor) -> bool {
    loop {
        if !cursor.goto_parent() {
            return false;
        }
        if cursor.goto_next_sibling() {
            return true;
        }
    }
}

/// Grammar artifacts tree-sitter sometimes reports as missing (not tokens anyone types).
fn is_artifact(node: Node) -> bool {
    node.is_missing() && matches!(node.kind(), "block_comment" | "comment" | "documentation_comment")
}

/// Where an error node really is and what to say about it; `None` for an artifact.
fn describe(node: Node, source: &str) -> Option<(tree_sitter::Point, String)> {
    if is_artifact(node) {
        return None;
    }
    if node.is_missing() {
        return Some((node.start_position(), format!("syntax error: expected `{}`", node.kind())));
    }
    // A missing token inside the error region is the most precise thing tree-sitter knows.
    let mut missing = None;
    walk(node, |inner| {
        if missing.is_none() && inner.is_missing() && !is_artifact(inner) {
            missing = Some(inner);
        }
    });
    if let Some(inner) = missing {
        return Some((inner.start_position(), format!("syntax error: expected `{}`", inner.kind())));
    }
    let text = &source[node.byte_range()];
    let first_line = text.lines().next().unwrap_or("").trim_end();
    // A Python block opener without its colon: the commonest slip, and one tree-sitter swallows
    // whole into an ERROR node.
    let opener = first_line.split_whitespace().next().unwrap_or("");
    let python_block =
        ["def", "class", "if", "elif", "else", "for", "while", "with", "try", "except", "finally", "async"];
    if python_block.contains(&opener) && !first_line.ends_with(':') && text.contains('\n') {
        let start = node.start_position();
        let end = tree_sitter::Point { row: start.row, column: start.column + first_line.len() };
        return Some((end, format!("syntax error: expected `:` at the end of `{}`", first_line.trim())));
    }
    let snippet: String = first_line.trim().chars().take(40).collect();
    Some((node.start_position(), format!("syntax error near `{snippet}`")))
}

/// How to see the error with the runtime's own tools.
fn checker_help(relative: &str) -> String {
    let extension = relative.rsplit_once('.').map_or("", |(_, extension)| extension);
    match extension {
        "py" => format!("Run `python3 -m py_compile {relative}` to see the error as Python reports it."),
        "js" | "mjs" | "cjs" => format!("Run `node --check {relative}` to see the error as Node reports it."),
        "dart" => "Run `dart analyze` in the package to see the error as Dart reports it.".to_string(),
        _ => "Fix the syntax error; if the file is not part of the function, leave it out of the upload.".to_string(),
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
