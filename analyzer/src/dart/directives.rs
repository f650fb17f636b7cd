//! The directives of one Dart file: imports (prefix, `show`/`hide`, `deferred`, every conditional
//! alternative), exports, `part` and `part of`.

use tree_sitter::Node;

use super::strings::{decode_string_literal, StringValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectiveKind {
    Import,
    Export,
    Part,
    PartOf,
}

/// Which names of the target a directive lets through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Combinators {
    /// `show` lists: a name must be in every one of them.
    pub show: Vec<Vec<String>>,
    pub hide: Vec<String>,
}

impl Combinators {
    pub fn admits(&self, name: &str) -> bool {
        self.show.iter().all(|list| list.iter().any(|shown| shown == name))
            && !self.hide.iter().any(|hidden| hidden == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub kind: DirectiveKind,
    /// Every URI the directive may load: the default and each conditional alternative.
    pub uris: Vec<UriText>,
    pub prefix: Option<String>,
    pub combinators: Combinators,
    pub row: usize,
    pub column: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriText {
    Constant(String),
    /// Interpolation in a directive URI is a compile error; we refuse it too.
    Interpolated,
}

/// Reads the directives at the top of a parsed file.
pub fn read_directives(root: Node, source: &str) -> Vec<Directive> {
    let mut directives = Vec::new();
    let mut cursor = root.walk();
    for node in root.named_children(&mut cursor) {
        match node.kind() {
            "import_or_export" => {
                let mut inner = node.walk();
                for child in node.named_children(&mut inner) {
                    match child.kind() {
                        "library_import" => {
                            let mut specs = child.walk();
                            for spec in
                                child.named_children(&mut specs).filter(|spec| spec.kind() == "import_specification")
                            {
                                directives.push(directive(DirectiveKind::Import, spec, source));
                            }
                        }
                        "library_export" => directives.push(directive(DirectiveKind::Export, child, source)),
                        _ => {}
                    }
                }
            }
            "part_directive" => directives.push(directive(DirectiveKind::Part, node, source)),
            "part_of_directive" => directives.push(directive(DirectiveKind::PartOf, node, source)),
            _ => {}
        }
    }
    directives
}

fn directive(kind: DirectiveKind, node: Node, source: &str) -> Directive {
    let mut uris = Vec::new();
    collect_uris(node, source, &mut uris);
    let prefix = node.child_by_field_name("alias").map(|alias| source[alias.byte_range()].to_string());
    let mut combinators = Combinators::default();
    let mut cursor = node.walk();
    for combinator in node.named_children(&mut cursor).filter(|child| child.kind() == "combinator") {
        let keyword = combinator.child(0).map(|keyword| keyword.kind()).unwrap_or_default();
        let mut names_cursor = combinator.walk();
        let names: Vec<String> = combinator
            .named_children(&mut names_cursor)
            .filter(|name| name.kind() == "identifier")
            .map(|name| source[name.byte_range()].to_string())
            .collect();
        if keyword == "show" {
            combinators.show.push(names);
        } else {
            combinators.hide.extend(names);
        }
    }
    let start = node.start_position();
    Directive { kind, uris, prefix, combinators, row: start.row + 1, column: start.column + 1 }
}

/// Every string literal inside `uri` nodes (the default URI and each `if (…) 'alternative'`).
fn collect_uris(node: Node, source: &str, uris: &mut Vec<UriText>) {
    let mut cursor = node.walk();
    for child in node.named_children(&mut cursor) {
        match child.kind() {
            "uri" => {
                let mut inner = child.walk();
                let literal = child.named_children(&mut inner).find(|part| part.kind() == "string_literal");
                if let Some(literal) = literal {
                    uris.push(match decode_string_literal(literal, source) {
                        StringValue::Constant(text) => UriText::Constant(text),
                        StringValue::Interpolated => UriText::Interpolated,
                    });
                }
            }
            "configurable_uri" | "configuration_uri" => collect_uris(child, source, uris),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directives_of(source: &str) -> Vec<Directive> {
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&tree_sitter_dart::LANGUAGE.into()).unwrap();
        let tree = parser.parse(source, None).unwrap();
        read_directives(tree.root_node(), source)
    }

    #[test]
    fn imports_carry_prefix_combinators_and_every_conditional_alternative() {
        let found = directives_of(
            "import 'dart:io' as x show Process, exit hide File;\n\
             import 'a.dart' if (dart.library.io) 'b.dart' if (dart.library.html) 'c.dart' deferred as d;\n\
             export 'src/x.dart' show Y;\npart 'p.dart';\n",
        );
        assert_eq!(found.len(), 4);
        assert_eq!(found[0].prefix.as_deref(), Some("x"));
        assert!(
            found[0].combinators.admits("Process")
                && !found[0].combinators.admits("File")
                && !found[0].combinators.admits("Socket")
        );
        let alternatives: Vec<_> = found[1].uris.iter().map(|uri| format!("{uri:?}")).collect();
        assert_eq!(alternatives.len(), 3, "{alternatives:?}");
        assert_eq!(found[1].prefix.as_deref(), Some("d"));
        assert_eq!((found[2].kind, found[3].kind), (DirectiveKind::Export, DirectiveKind::Part));
        assert_eq!(found[3].uris, vec![UriText::Constant("p.dart".into())]);
    }
}
