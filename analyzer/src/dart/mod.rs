//! The Dart front end: parse every file, build the library graph, resolve names, apply the rules.
//!
//! Resolution follows Dart's scoping for the names that matter (`rules::denied_io_member::DENIED`
//! and the file-system types): a name refers to `dart:io` when an import brings it into scope —
//! directly, through a prefix, or through `export`s of the package's own libraries, filtered by
//! `show`/`hide` — and no declaration of the library, of an enclosing class, or of an enclosing
//! function or block shadows it. Conditional imports count with every alternative.

mod directives;
mod entry;
mod paths;
mod scope;
pub mod strings;

use std::collections::{BTreeSet, HashMap};

use tree_sitter::{Parser, Tree};

use crate::package::{normalize, Package, SKIPPED_DIRS};
use crate::report::{Entry, Finding};
use crate::rules::{
    denied_io_member, denied_library, denied_package, import_outside_package, parse_error, unanalyzed_import,
    uri_interpolation,
};
use crate::syntax::{read_source, report_syntax_errors};
use crate::Options;
use directives::{read_directives, Directive, DirectiveKind, UriText};

/// File-system types whose path arguments are checked (see `paths`).
const FILE_SYSTEM_TYPES: [&str; 3] = ["File", "Directory", "FileSystemEntity"];

/// Every `dart:io` name the resolver tracks.
fn tracked_names() -> impl Iterator<Item = &'static str> {
    denied_io_member::DENIED.iter().map(|(name, _)| *name).chain(FILE_SYSTEM_TYPES)
}

fn is_tracked(name: &str) -> bool {
    tracked_names().any(|tracked| tracked == name)
}

/// The names of `dart:io` a namespace brings in (only tracked ones are modelled).
type Names = BTreeSet<&'static str>;

pub(crate) struct DartFile {
    pub relative: String,
    pub source: String,
    pub tree: Tree,
    directives: Vec<Directive>,
}

/// Where a directive URI points.
enum Target {
    DartIo,
    Sdk,
    File(usize),
    ExternalPackage,
    Missing,
}

/// Parses one Dart source; `None` when tree-sitter gives up (it only does on cancellation).
pub fn parse(source: &str) -> Option<Tree> {
    let mut parser = Parser::new();
    parser.set_language(&tree_sitter_dart::LANGUAGE.into()).ok()?;
    parser.parse(source, None)
}

/// Analyses every `.dart` file of the package; returns the entry and the findings.
pub fn analyze(package: &Package, package_name: Option<&str>, options: &Options) -> (Option<Entry>, Vec<Finding>) {
    let mut findings = Vec::new();
    let mut files = Vec::new();
    for file in package.with_extension("dart") {
        if let Some(source) = read_source(file, &mut findings) {
            files.extend(analyze_source(&file.relative, source, &mut findings));
        }
    }
    let entry = check_files(&files, package_name, options, &mut findings);
    (entry, findings)
}

/// Runs the whole Dart front end on one source text, as a package holding only `main.dart`:
/// parsing, directives, the library graph, resolution and every Dart rule. For fuzzing and tests;
/// touches no file system.
pub fn analyze_main_source(source: &str, options: &Options) -> (Option<Entry>, Vec<Finding>) {
    let mut findings = Vec::new();
    let files: Vec<DartFile> = analyze_source("main.dart", source.to_string(), &mut findings).into_iter().collect();
    let entry = check_files(&files, None, options, &mut findings);
    (entry, findings)
}

/// The checks over parsed files: directives, the library graph and resolution, the entry.
fn check_files(
    files: &[DartFile],
    package_name: Option<&str>,
    options: &Options,
    findings: &mut Vec<Finding>,
) -> Option<Entry> {
    let graph = Graph::new(files, package_name);
    for (index, file) in files.iter().enumerate() {
        check_directives(&graph, index, file, options, findings);
    }
    let exports = graph.denied_exports();
    for library in &graph.libraries {
        let scope = graph.import_scope(library, &exports);
        for &member in &library.members {
            scope::find_references(&files[member], &scope, findings);
        }
    }
    let wanted = options.entry.as_ref().map_or("main.dart", |entry| entry.file.as_str());
    let function = options.entry.as_ref().and_then(|entry| entry.function.as_deref());
    entry::find_entry(wanted, files.iter().find(|file| file.relative == wanted), function, findings)
}

/// Parses one file and reports its syntax errors; the tree is kept even when it has errors, so
/// the rest of the file is still checked.
fn analyze_source(relative: &str, source: String, findings: &mut Vec<Finding>) -> Option<DartFile> {
    let Some(tree) = parse(&source) else {
        findings.push(parse_error::RULE.at(relative, 1, 1, "the file could not be parsed"));
        return None;
    };
    report_syntax_errors(relative, &source, tree.root_node(), findings);
    let directives = read_directives(tree.root_node(), &source);
    Some(DartFile { relative: relative.to_string(), source, tree, directives })
}

struct Library {
    /// The defining file first, then its parts.
    members: Vec<usize>,
}

struct Graph<'a> {
    files: &'a [DartFile],
    package_name: Option<&'a str>,
    by_path: HashMap<&'a str, usize>,
    libraries: Vec<Library>,
    library_of: Vec<usize>,
}

impl<'a> Graph<'a> {
    fn new(files: &'a [DartFile], package_name: Option<&'a str>) -> Self {
        let by_path: HashMap<&str, usize> =
            files.iter().enumerate().map(|(index, file)| (file.relative.as_str(), index)).collect();
        let mut graph =
            Graph { files, package_name, by_path, libraries: Vec::new(), library_of: vec![usize::MAX; files.len()] };
        // A part belongs to the library whose `part` directive names it (first one wins).
        let mut owner: Vec<Option<usize>> = vec![None; files.len()];
        for (index, file) in files.iter().enumerate() {
            for directive in file.directives.iter().filter(|directive| directive.kind == DirectiveKind::Part) {
                for uri in &directive.uris {
                    if let UriText::Constant(uri) = uri {
                        if let Target::File(part) = graph.resolve(index, uri) {
                            let is_part =
                                files[part].directives.iter().any(|directive| directive.kind == DirectiveKind::PartOf);
                            if is_part && part != index && owner[part].is_none() {
                                owner[part] = Some(index);
                            }
                        }
                    }
                }
            }
        }
        let mut parts_of: Vec<Vec<usize>> = vec![Vec::new(); files.len()];
        for (part, owner) in owner.iter().enumerate() {
            if let Some(owner) = owner {
                parts_of[*owner].push(part);
            }
        }
        for index in 0..files.len() {
            if owner[index].is_none() {
                let mut members = vec![index];
                members.extend(parts_of[index].iter().copied());
                for &member in &members {
                    graph.library_of[member] = graph.libraries.len();
                }
                graph.libraries.push(Library { members });
            }
        }
        // Parts owned by a part (invalid Dart) still get checked, within their owner's library.
        for index in 0..files.len() {
            if graph.library_of[index] == usize::MAX {
                graph.library_of[index] = graph.libraries.len();
                graph.libraries.push(Library { members: vec![index] });
            }
        }
        graph
    }

    /// Resolves a directive URI written in file `from`.
    fn resolve(&self, from: usize, uri: &str) -> Target {
        if uri == "dart:io" {
            return Target::DartIo;
        }
        if uri.starts_with("dart:") {
            return Target::Sdk;
        }
        if let Some(rest) = uri.strip_prefix("package:") {
            let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
            if Some(name) == self.package_name {
                return normalize(&format!("lib/{path}"))
                    .and_then(|path| self.by_path.get(path.as_str()).copied())
                    .map_or(Target::Missing, Target::File);
            }
            return Target::ExternalPackage;
        }
        let base = self.files[from].relative.rsplit_once('/').map_or("", |(dir, _)| dir);
        let joined = if base.is_empty() { uri.to_string() } else { format!("{base}/{uri}") };
        normalize(&joined)
            .and_then(|path| self.by_path.get(path.as_str()).copied())
            .map_or(Target::Missing, Target::File)
    }

    /// Tracked `dart:io` names each library exports, to a fixpoint over the export graph.
    fn denied_exports(&self) -> Vec<Names> {
        let mut exports: Vec<Names> = vec![Names::new(); self.libraries.len()];
        loop {
            let mut changed = false;
            for (library_index, library) in self.libraries.iter().enumerate() {
                let defining = library.members[0];
                let mut names = exports[library_index].clone();
                for directive in
                    self.files[defining].directives.iter().filter(|directive| directive.kind == DirectiveKind::Export)
                {
                    names.extend(self.names_through(defining, directive, &exports));
                }
                if names.len() != exports[library_index].len() {
                    exports[library_index] = names;
                    changed = true;
                }
            }
            if !changed {
                return exports;
            }
        }
    }

    /// Tracked names a directive brings in from all its URI alternatives, after combinators.
    fn names_through(&self, from: usize, directive: &Directive, exports: &[Names]) -> Names {
        let mut names = Names::new();
        for uri in &directive.uris {
            let UriText::Constant(uri) = uri else { continue };
            match self.resolve(from, uri) {
                Target::DartIo => names.extend(tracked_names()),
                Target::File(file) => names.extend(exports[self.library_of[file]].iter().copied()),
                Target::Sdk | Target::ExternalPackage | Target::Missing => {}
            }
        }
        names.retain(|name| directive.combinators.admits(name));
        names
    }

    /// The tracked names a library sees, unprefixed and per prefix.
    fn import_scope(&self, library: &Library, exports: &[Names]) -> scope::ImportScope {
        let defining = library.members[0];
        let mut import_scope = scope::ImportScope::default();
        for directive in
            self.files[defining].directives.iter().filter(|directive| directive.kind == DirectiveKind::Import)
        {
            let names = self.names_through(defining, directive, exports);
            match &directive.prefix {
                Some(prefix) => import_scope.prefixed.entry(prefix.clone()).or_default().extend(names),
                None => import_scope.unprefixed.extend(names),
            }
        }
        // The library's own top-level declarations shadow what imports bring in.
        for &member in &library.members {
            for name in scope::top_level_names(&self.files[member]) {
                import_scope.unprefixed.retain(|imported| *imported != name);
            }
        }
        import_scope
    }
}

/// Directive-level rules: denied SDK libraries, denied packages, interpolated and escaping URIs,
/// and re-exports of denied `dart:io` names.
fn check_directives(graph: &Graph, index: usize, file: &DartFile, options: &Options, findings: &mut Vec<Finding>) {
    for directive in &file.directives {
        for uri in &directive.uris {
            let (line, column) = (directive.row, directive.column);
            let uri = match uri {
                UriText::Constant(uri) => uri,
                UriText::Interpolated => {
                    findings.push(uri_interpolation::RULE.at(
                        &file.relative,
                        line,
                        column,
                        "this directive's URI contains interpolation",
                    ));
                    continue;
                }
            };
            if let Some(why) = denied_library::reason(uri) {
                findings.push(denied_library::RULE.at(
                    &file.relative,
                    line,
                    column,
                    format!("`{uri}` is not allowed: it {why}"),
                ));
            } else if let Some(name) = uri.strip_prefix("package:").and_then(|rest| rest.split('/').next()) {
                if options.is_denied_package(name) {
                    findings.push(denied_package::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!("package `{name}` is not allowed"),
                    ));
                }
            } else if uri.starts_with("file:") || (!uri.contains(':') && graph.escapes(index, uri)) {
                findings.push(import_outside_package::RULE.at(
                    &file.relative,
                    line,
                    column,
                    format!("`{uri}` is outside the package"),
                ));
            } else if !uri.contains(':') || uri.starts_with("package:") && graph.is_own_package(uri) {
                if !uri.ends_with(".dart") {
                    findings.push(unanalyzed_import::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!("`{uri}` is not a .dart file"),
                    ));
                } else if let Some(skipped) = graph.skipped_directory(index, uri) {
                    findings.push(import_outside_package::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!(
                            "`{uri}` is in {skipped}/, which is never trusted (the platform regenerates or ignores it)"
                        ),
                    ));
                }
            }
            if directive.kind == DirectiveKind::Export && uri == "dart:io" {
                let reexported: Vec<&str> = denied_io_member::DENIED
                    .iter()
                    .map(|(name, _)| *name)
                    .filter(|name| directive.combinators.admits(name))
                    .collect();
                if !reexported.is_empty() {
                    findings.push(denied_io_member::RULE.at(
                        &file.relative,
                        line,
                        column,
                        format!("re-exports `dart:io`'s {}", reexported.join(", ")),
                    ));
                }
            }
        }
    }
}

impl Graph<'_> {
    fn is_own_package(&self, uri: &str) -> bool {
        let name = uri.strip_prefix("package:").and_then(|rest| rest.split('/').next());
        name.is_some() && name == self.package_name
    }

    /// The skipped directory a relative or own-package URI points into, if any.
    fn skipped_directory(&self, from: usize, uri: &str) -> Option<&'static str> {
        let path = if let Some(rest) = uri.strip_prefix("package:") {
            let (name, path) = rest.split_once('/')?;
            (Some(name) == self.package_name).then(|| format!("lib/{path}"))?
        } else if uri.contains(':') {
            return None;
        } else {
            let base = self.files[from].relative.rsplit_once('/').map_or("", |(dir, _)| dir);
            format!("{base}/{uri}")
        };
        let path = normalize(&path)?;
        path.split('/').find_map(|part| SKIPPED_DIRS.iter().copied().find(|skipped| *skipped == part))
    }

    fn escapes(&self, from: usize, uri: &str) -> bool {
        let base = self.files[from].relative.rsplit_once('/').map_or("", |(dir, _)| dir);
        uri.starts_with('/') || normalize(&format!("{base}/{uri}")).is_none()
    }
}
