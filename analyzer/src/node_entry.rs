//! Which file of a Node package runs, and whether it can export the function to call.
//!
//! The file: the deploy's entry, else `package.json` `exports["."]` (or `exports` itself when it
//! is a path or a conditions object), else `main`, else `index.js`, `index.mjs`, `index.cjs`.
//! `main` is resolved as Node does for a directory's package: the path, then `.js`, then
//! `/index.js`. Among `exports` conditions, the ones `import()` matches come first (`import`,
//! `node`, `default`), then `require`: the platform loads the entry with `import()`.
//!
//! Whether it may export the function is a reading of the source: an `export` statement, or any
//! use of `exports`, `module` or a top-level `this` (CommonJS's `module.exports`) may. A file with
//! none of them cannot, so it is a script; anything else is settled by loading it.

use tree_sitter::Node;

use crate::package::{normalize, Package};
use crate::report::{Entry, EntryMode, Finding};
use crate::rules::missing_entry;
use crate::syntax::{text, walk, ParsedFile};
use crate::EntrySpec;

/// The files a Node function's entry is looked for in, without `--entry` or a `package.json` that
/// names one: Node's and Lambda's `index`, then where OpenFaaS's, the Serverless Framework's and
/// SAM's templates put their handler.
pub const DEFAULT_FILES: [&str; 7] =
    ["index.js", "index.mjs", "index.cjs", "handler.js", "handler.mjs", "app.js", "app.mjs"];
const CONDITIONS: [&str; 4] = ["import", "node", "default", "require"];

/// The entry file, or a `missing-entry` finding saying what was looked for.
pub fn entry_file(package: &Package, explicit: Option<&EntrySpec>, findings: &mut Vec<Finding>) -> Option<String> {
    if let Some(explicit) = explicit {
        if package.file(&explicit.file).is_some() {
            return Some(explicit.file.clone());
        }
        let message = format!("the package has no {} (named as the entry)", explicit.file);
        findings.push(missing_entry::RULE.at_with_help(&explicit.file, 1, 1, message, "Name a file of the package."));
        return None;
    }
    if let Some(manifest) = package.file("package.json") {
        let manifest: Option<serde_json::Value> =
            std::fs::read(&manifest.path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let Some(manifest) = manifest else {
            findings.push(missing_entry::RULE.at_with_help(
                "package.json",
                1,
                1,
                "package.json is not a readable JSON object",
                "Fix package.json, or name the entry (`dart_cloud deploy --entry index.js`).",
            ));
            return None;
        };
        if let Some(target) = manifest.get("exports").and_then(exports_target) {
            return resolved(package, "exports", &target, false, findings);
        }
        if let Some(main) = manifest.get("main").and_then(serde_json::Value::as_str) {
            return resolved(package, "main", main, true, findings);
        }
    }
    if let Some(index) = DEFAULT_FILES.into_iter().find(|name| package.file(name).is_some()) {
        return Some(index.to_string());
    }
    findings.push(missing_entry::RULE.at_with_help(
        "index.js",
        1,
        1,
        format!(
            "the package has no entry: no package.json `main` or `exports`, and none of {}",
            DEFAULT_FILES.join(", ")
        ),
        "Export `handler` from index.js, or name the entry (`dart_cloud deploy --entry FILE:FUNCTION`).",
    ));
    None
}

/// The path `exports` gives for the package itself: a string, `exports["."]`, or a conditions
/// object (possibly nested), picking the first condition `import()` matches.
fn exports_target(exports: &serde_json::Value) -> Option<String> {
    match exports {
        serde_json::Value::String(path) => Some(path.clone()),
        serde_json::Value::Object(map) => {
            if let Some(root) = map.get(".") {
                return exports_target(root);
            }
            CONDITIONS.iter().filter_map(|condition| map.get(*condition)).find_map(exports_target)
        }
        serde_json::Value::Array(alternatives) => alternatives.iter().find_map(exports_target),
        _ => None,
    }
}

/// A path from `package.json` as a package file; `main` also tries `.js` and `/index.js`.
fn resolved(
    package: &Package,
    field: &str,
    target: &str,
    node_main_rules: bool,
    findings: &mut Vec<Finding>,
) -> Option<String> {
    let base = normalize(target).unwrap_or_default();
    let mut tries = vec![base.clone()];
    if node_main_rules {
        tries.push(format!("{base}.js"));
        tries.push(if base.is_empty() { "index.js".into() } else { format!("{base}/index.js") });
    }
    if let Some(found) = tries.iter().find(|path| !path.is_empty() && package.file(path).is_some()) {
        return Some(found.clone());
    }
    findings.push(missing_entry::RULE.at_with_help(
        "package.json",
        1,
        1,
        format!("package.json `{field}` names {target:?}, which is not a file of the package"),
        "Point it at the file that exports `handler`, or name the entry (`dart_cloud deploy --entry FILE:FUNCTION`).",
    ));
    None
}

/// What the entry's source says about the mode.
pub fn entry_hint(file: &ParsedFile, function: &str) -> Entry {
    let mut surface = None;
    walk(file.tree.root_node(), |node| {
        if surface.is_some() {
            return;
        }
        surface = match node.kind() {
            "export_statement" => Some("an `export` statement"),
            "identifier" if matches!(text(node, &file.source), "exports" | "module") => {
                Some("`exports` or `module.exports`")
            }
            "this" if at_top_level(node) => Some("a top-level `this`"),
            // Cloud Functions registers instead of exporting: `functions.http('name', fn)`.
            "string" if text(node, &file.source).contains("@google-cloud/functions-framework") => {
                Some("Cloud Functions' framework (`functions.http`)")
            }
            // OpenWhisk's actions declare `function main(params)` and export nothing.
            "function_declaration"
                if node.parent().is_some_and(|parent| parent.kind() == "program")
                    && node.child_by_field_name("name").is_some_and(|name| {
                        matches!(text(name, &file.source), "main") || text(name, &file.source) == function
                    }) =>
            {
                Some("a top-level `function main`")
            }
            _ => None,
        };
    });
    match surface {
        Some(surface) => Entry::new(
            &file.relative,
            function,
            EntryMode::Handler,
            format!("{} uses {surface}, so it may export `{function}`: loading it decides", file.relative),
        ),
        None => Entry::new(
            &file.relative,
            function,
            EntryMode::Main,
            format!(
                "{} exports nothing (no `export`, `exports` or `module.exports`): it runs as a script, one process per call",
                file.relative
            ),
        ),
    }
}

/// `this` outside any function or class: CommonJS's `module.exports`.
fn at_top_level(node: Node) -> bool {
    let mut current = node.parent();
    while let Some(parent) = current {
        if matches!(
            parent.kind(),
            "function_declaration"
                | "function_expression"
                | "function"
                | "generator_function"
                | "generator_function_declaration"
                | "method_definition"
                | "class_body"
        ) {
            return false;
        }
        current = parent.parent();
    }
    true
}
