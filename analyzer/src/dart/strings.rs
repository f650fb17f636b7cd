//! Decoding Dart string literals exactly as the language does, so an import URI cannot hide
//! behind a spelling: raw strings, triple quotes, adjacent literals, and every escape form.

use tree_sitter::Node;

/// Why a literal has no constant value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringValue {
    Constant(String),
    /// Contains `$x` or `${…}`: not a constant (and not allowed in a directive's URI).
    Interpolated,
}

/// Decodes a `string_literal` node (one or more adjacent parts).
pub fn decode_string_literal(node: Node, source: &str) -> StringValue {
    let mut value = String::new();
    let mut cursor = node.walk();
    for part in node.named_children(&mut cursor) {
        match decode_part(part, source) {
            Some(text) => value.push_str(&text),
            None => return StringValue::Interpolated,
        }
    }
    StringValue::Constant(value)
}

fn decode_part(part: Node, source: &str) -> Option<String> {
    let kind = part.kind();
    let raw = kind.starts_with("raw_");
    let multiline = kind.ends_with("_multiple");
    let mut value = String::new();
    let mut cursor = part.walk();
    for piece in part.children(&mut cursor) {
        let text = &source[piece.byte_range()];
        match piece.kind() {
            "template_substitution" => return None,
            "escape_sequence" if !raw => value.push_str(&unescape(text)),
            kind if kind.starts_with("template_chars") || kind == "escape_sequence" => value.push_str(text),
            // Quote tokens and anything else carry no characters of the value.
            _ => {}
        }
    }
    if multiline {
        value = strip_first_blank_line(&value);
    }
    Some(value)
}

/// A multi-line string drops its first line when that line holds only whitespace (and the
/// backslash-escaped form of it in a non-raw string is not special here: escapes are decoded
/// first, which matches what the Dart scanner sees for plain whitespace).
fn strip_first_blank_line(value: &str) -> String {
    let first_line_end = value.find('\n');
    match first_line_end {
        Some(end) if value[..end].trim_end_matches('\r').chars().all(|c| c == ' ' || c == '\t') => {
            value[end + 1..].to_string()
        }
        _ => value.to_string(),
    }
}

/// Decodes one escape sequence (`\n`, `\x41`, `\u0041`, `\u{1F600}`, `\$`, `\q` → `q`).
fn unescape(escape: &str) -> String {
    let body = &escape[1..];
    let mut chars = body.chars();
    let Some(first) = chars.next() else { return String::new() };
    let hex = |digits: &str| u32::from_str_radix(digits, 16).ok().and_then(char::from_u32).map(String::from);
    match first {
        'n' => "\n".into(),
        'r' => "\r".into(),
        'f' => "\u{c}".into(),
        'b' => "\u{8}".into(),
        't' => "\t".into(),
        'v' => "\u{b}".into(),
        'x' => hex(&body[1..]).unwrap_or_default(),
        'u' if body[1..].starts_with('{') => {
            hex(body[1..].trim_start_matches('{').trim_end_matches('}')).unwrap_or_default()
        }
        'u' => hex(&body[1..]).unwrap_or_default(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_string(source: &str) -> StringValue {
        let mut parser = tree_sitter::Parser::new();
        parser.set_language(&tree_sitter_dart::LANGUAGE.into()).unwrap();
        let tree = parser.parse(source, None).unwrap();
        fn find(node: Node) -> Option<Node> {
            if node.kind() == "string_literal" {
                return Some(node);
            }
            let mut cursor = node.walk();
            let found = node.children(&mut cursor).find_map(find);
            found
        }
        decode_string_literal(find(tree.root_node()).expect("a string literal"), source)
    }

    #[test]
    fn every_spelling_of_dart_io_decodes_to_dart_io() {
        for source in [
            "import 'dart:io';",
            "import \"dart:io\";",
            "import r'dart:io';",
            "import 'dart:' 'io';",
            "import r'dart:' \"i\" 'o';",
            "import 'dart:\\x69o';",
            "import 'dart:\\u0069o';",
            "import 'dart:\\u{69}o';",
            "import 'da\\rt:io';",
            "import '''dart:io''';",
            "import '''\ndart:io''';",
            "import \"\"\"  \ndart:io\"\"\";",
            "import r'''dart:io''';",
        ] {
            let expected = if source.contains("\\r") { "da\rt:io" } else { "dart:io" };
            assert_eq!(first_string(source), StringValue::Constant(expected.into()), "{source}");
        }
    }

    #[test]
    fn raw_strings_keep_backslashes_and_interpolation_is_not_constant() {
        assert_eq!(first_string("import r'dart:\\x69o';"), StringValue::Constant("dart:\\x69o".into()));
        assert_eq!(first_string("import 'dart:$x';"), StringValue::Interpolated);
        assert_eq!(first_string("import 'dart:${x}';"), StringValue::Interpolated);
    }

    #[test]
    fn a_first_line_with_text_is_kept() {
        assert_eq!(first_string("var a = '''x\ny''';"), StringValue::Constant("x\ny".into()));
    }
}
