//! `analyzer`: the deploy gate. Reads a function package and decides whether the platform may run
//! it: which runtime, which entry, and what in the code reaches past the sandbox.
//!
//! Dart gets a real front end (tree-sitter-dart, the library graph, name resolution through
//! prefixes, `show`/`hide`, exports and parts). Node and Python get smaller rule sets, documented
//! as a lesser layer: the OS sandbox is the boundary for every runtime.
//!
//! Findings are data, never errors: [`analyze`] fails only when the package cannot be read.

pub mod cli;
pub mod dart;
pub mod dependencies;
pub mod manifests;
mod node;
mod node_entry;
pub mod output;
pub mod package;
mod pubspec;
mod python;
pub mod report;
pub mod rules;
mod syntax;

use std::path::Path;

use package::Package;
pub use report::{Entry, EntryMode, Finding, Report, Runtime, Severity, Verdict};
use rules::{build_hooks, denied_package, native_code, symlink_in_package};

/// Which runtime to analyse for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeChoice {
    /// From the files: `main.dart`/`pubspec.yaml` → Dart, `index.js`/`package.json` → Node, `main.py` → Python.
    #[default]
    Auto,
    Dart,
    Node,
    Python,
}

/// The function to call when none is named.
pub const DEFAULT_FUNCTION: &str = "handler";

/// An entry the deploy names: `FILE` or `FILE:FUNCTION` (`src/app.py:handle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntrySpec {
    /// Normalized, relative to the package directory.
    pub file: String,
    pub function: Option<String>,
}

impl std::str::FromStr for EntrySpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (file, function) = match text.rsplit_once(':') {
            Some((file, function)) => (file, Some(function)),
            None => (text, None),
        };
        if let Some(function) = function {
            if !is_identifier(function) {
                return Err(format!(
                    "{function:?} cannot name a function: use letters, digits and _, not starting with a digit (FILE:FUNCTION, like src/app.py:handle)"
                ));
            }
        }
        if file.starts_with('/') || file.contains('\\') {
            return Err(format!("{file:?} must be a path relative to the package directory, with / separators"));
        }
        let file = package::normalize(file).filter(|file| !file.is_empty()).ok_or_else(|| {
            format!("{file:?} is not a file inside the package (FILE:FUNCTION, like src/app.py:handle)")
        })?;
        Ok(EntrySpec { file, function: function.map(str::to_string) })
    }
}

impl EntrySpec {
    /// The runtime the file's extension names, if it names one.
    fn runtime(&self) -> Option<Runtime> {
        match self.file.rsplit_once('.').map(|(_, extension)| extension) {
            Some("dart") => Some(Runtime::Dart),
            Some("js" | "mjs" | "cjs") => Some(Runtime::Node),
            Some("py") => Some(Runtime::Python),
            _ => None,
        }
    }

    pub fn function(&self) -> &str {
        self.function.as_deref().unwrap_or(DEFAULT_FUNCTION)
    }
}

/// A name every runtime accepts for a function (it is written into Dart source).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|rest| rest.is_ascii_alphanumeric() || rest == '_')
        && name.len() <= 128
}

/// What the gate allows beyond its defaults.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub runtime: RuntimeChoice,
    /// The entry the deploy names; `None` finds the runtime's usual one.
    pub entry: Option<EntrySpec>,
    /// Packages allowed even though they are on the default deny list.
    pub allowed_packages: Vec<String>,
    /// Packages denied on top of the default deny list.
    pub denied_packages: Vec<String>,
    pub allow_path_dependencies: bool,
    pub allow_git_dependencies: bool,
    pub allow_dependency_overrides: bool,
    /// A finding in an installed package refuses the deploy (default: a warning naming it).
    pub dependency_findings_fatal: bool,
    /// Native modules in installed packages refuse the deploy (default: allowed).
    pub deny_native_dependencies: bool,
}

impl Options {
    pub fn is_denied_package(&self, name: &str) -> bool {
        let denied =
            denied_package::DEFAULT_DENIED.contains(&name) || self.denied_packages.iter().any(|denied| denied == name);
        denied && !self.allowed_packages.iter().any(|allowed| allowed == name)
    }
}

/// Why a package could not be analysed at all.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    #[error("cannot read the package directory {path}: {source}")]
    Read { path: String, source: std::io::Error },
    /// No entry the defaults know. Says what the package holds instead of where it was unpacked
    /// (a deploy analyses a temporary copy; its path means nothing to the user).
    #[error(
        "the package has no function the defaults find: expected main.dart (Dart), package.json, index.js/.mjs/.cjs, handler.js or app.js (Node), main.py, lambda_function.py, handler.py or app.py (Python), or a template.yaml, serverless.yml or stack.yml naming one{}; name the entry as FILE:FUNCTION (dart_cloud deploy --entry, the deploy's `entry` field)",
        found_sources(.0)
    )]
    NoRuntime(Vec<String>),
    /// The manifests beside the code name several functions and nothing says which this deploy is.
    #[error(
        "{} name {} functions: deploy each with its entry and a name: {}",
        manifest_sources(.0),
        .0.len(),
        .0.iter().map(|f| format!("--entry {}:{} --name {}", f.entry.file, f.entry.function(), f.name)).collect::<Vec<_>>().join("; ")
    )]
    SeveralFunctions(Vec<manifests::ManifestFunction>),
}

/// `template.yaml and serverless.yml`: the manifests the functions come from.
fn manifest_sources(functions: &[manifests::ManifestFunction]) -> String {
    let mut files: Vec<&str> = functions.iter().map(|f| f.source.split(' ').next().unwrap_or("")).collect();
    files.dedup();
    files.join(" and ")
}

/// ", it has a.py, b.js" for the source files at the package's top, if any.
fn found_sources(sources: &[String]) -> String {
    match sources {
        [] => String::new(),
        [first, rest @ ..] if rest.len() < 8 => format!(
            "; it has {}",
            [first.as_str()].into_iter().chain(rest.iter().map(String::as_str)).collect::<Vec<_>>().join(", ")
        ),
        _ => format!("; it has {} and {} more source files", sources[..8].join(", "), sources.len() - 8),
    }
}

/// The source files at the package's top (where an entry usually is), sorted.
fn top_level_sources(package: &Package) -> Vec<String> {
    let mut sources: Vec<String> = package
        .files
        .iter()
        .map(|file| file.relative.clone())
        .filter(|relative| !relative.contains('/'))
        .filter(|relative| {
            relative.rsplit_once('.').is_some_and(|(_, extension)| {
                matches!(extension, "py" | "js" | "mjs" | "cjs" | "ts" | "dart" | "go" | "rb" | "java")
            })
        })
        .collect();
    sources.sort();
    sources
}

/// Analyses the package in `dir`.
pub fn analyze(dir: &Path, options: &Options) -> Result<Report, AnalyzeError> {
    let package =
        Package::read(dir).map_err(|source| AnalyzeError::Read { path: dir.display().to_string(), source })?;
    // Without an entry, the one function a manifest beside the code names is the entry.
    let mut from_manifest = None;
    if options.entry.is_none() {
        let named = manifests::discover(&package.root);
        match named.len() {
            0 => {}
            1 => from_manifest = named.into_iter().next(),
            // A template names them all; directories (`api/`) matter only when nothing else is there.
            _ if detect_runtime(&package).is_none() || named.iter().any(|function| function.shape.is_some()) => {
                return Err(AnalyzeError::SeveralFunctions(named))
            }
            _ => {}
        }
    }
    // Nothing else names an entry, and one Node or Python file is all there is at the top (a
    // Fission or OpenWhisk function is one file): that file.
    let mut only_source = None;
    if options.entry.is_none() && from_manifest.is_none() && detect_runtime(&package).is_none() {
        let sources: Vec<String> = top_level_sources(&package)
            .into_iter()
            .filter(|file| {
                file.ends_with(".js") || file.ends_with(".mjs") || file.ends_with(".cjs") || file.ends_with(".py")
            })
            .collect();
        if let [only] = sources.as_slice() {
            only_source = Some(EntrySpec { file: only.clone(), function: None });
        }
    }
    let chosen;
    let options = match (&from_manifest, &only_source) {
        (Some(function), _) => {
            chosen = Options { entry: Some(function.entry.clone()), ..options.clone() };
            &chosen
        }
        (None, Some(entry)) => {
            chosen = Options { entry: Some(entry.clone()), ..options.clone() };
            &chosen
        }
        (None, None) => options,
    };
    let runtime = match options.runtime {
        RuntimeChoice::Dart => Runtime::Dart,
        RuntimeChoice::Node => Runtime::Node,
        RuntimeChoice::Python => Runtime::Python,
        RuntimeChoice::Auto => options
            .entry
            .as_ref()
            .and_then(EntrySpec::runtime)
            .or_else(|| detect_runtime(&package))
            .ok_or_else(|| AnalyzeError::NoRuntime(top_level_sources(&package)))?,
    };
    let dependencies = dependencies::Dependencies::read(&package);
    let mut findings = Vec::new();
    for link in &package.symlinks {
        findings.push(symlink_in_package::RULE.at(link, 1, 1, format!("{link} is a symbolic link")));
    }
    native_binaries(&package, &mut findings);
    let entry = match runtime {
        Runtime::Dart => {
            let name = pubspec::check(&package, options, &mut findings);
            if package.directories.iter().any(|dir| dir == "hook") {
                findings.push(build_hooks::RULE.at("hook", 1, 1, "the package has a hook/ directory (build hooks)"));
            }
            let (entry, dart_findings) = dart::analyze(&package, name.as_deref(), options);
            findings.extend(dart_findings);
            entry
        }
        Runtime::Node => node::analyze(&package, options.entry.as_ref(), &mut findings),
        Runtime::Python => python::analyze(&package, options.entry.as_ref(), &dependencies, &mut findings),
    };
    dependencies::apply(
        &mut findings,
        &dependencies,
        options.dependency_findings_fatal,
        options.deny_native_dependencies,
    );
    let entry = match (entry, from_manifest) {
        (Some(mut entry), Some(function)) => {
            entry.reason = format!("{} names {}:{}; {}", function.source, entry.file, entry.function, entry.reason);
            entry.shape = function.shape.map(str::to_string);
            entry.shape_reason = function.shape.map(|_| format!("how {} has its platform call it", function.source));
            entry.name = Some(function.name);
            Some(entry)
        }
        (Some(mut entry), None) if only_source.is_some() => {
            entry.reason = format!("{} is the package's only source file; {}", entry.file, entry.reason);
            Some(entry)
        }
        (entry, _) => entry,
    };
    Ok(Report::new(runtime, entry, findings))
}

/// Judges the packages a deploy installed (they were not uploaded, so [`analyze`] never saw them)
/// under the same dependency policy as installed packages that were: `dir` holds `node_modules/`
/// (Node) or the tree `pip install --target` made (Python). Every finding is one of a dependency:
/// a warning naming it, or an error where `options` makes it fatal.
pub fn judge_installed(runtime: Runtime, dir: &Path, options: &Options) -> Result<Vec<Finding>, AnalyzeError> {
    let package =
        Package::read(dir).map_err(|source| AnalyzeError::Read { path: dir.display().to_string(), source })?;
    let dependencies = dependencies::Dependencies::read(&package);
    let mut findings = Vec::new();
    native_binaries(&package, &mut findings);
    if runtime == Runtime::Python {
        python::scan_dependencies(&package, &dependencies, &mut findings);
    }
    dependencies::apply(
        &mut findings,
        &dependencies,
        options.dependency_findings_fatal,
        options.deny_native_dependencies,
    );
    Ok(findings)
}

/// A finding for every native binary in the package (extension modules, addons).
fn native_binaries(package: &Package, findings: &mut Vec<Finding>) {
    for file in package.files.iter().chain(&package.native_files) {
        let extension = file.relative.rsplit_once('.').map_or("", |(_, extension)| extension);
        if matches!(extension, "node" | "so" | "dylib" | "dll") {
            findings.push(native_code::RULE.at(&file.relative, 1, 1, format!("{} is a native binary", file.relative)));
        }
    }
}

/// A function the deploy named must at least be possible in the file: one the file cannot export
/// is a finding, never a quiet switch to running the file as a script.
pub(crate) fn named_function_exists(
    entry: Entry,
    explicit: Option<&EntrySpec>,
    findings: &mut Vec<Finding>,
) -> Option<Entry> {
    if entry.mode == EntryMode::Main && explicit.is_some_and(|explicit| explicit.function.is_some()) {
        findings.push(rules::missing_entry::RULE.at_with_help(
            &entry.file,
            1,
            1,
            format!("{} cannot export `{}`, the function named as the entry", entry.file, entry.function),
            "Define and export that function, or name another one (FILE:FUNCTION).",
        ));
        return None;
    }
    Some(entry)
}

fn detect_runtime(package: &Package) -> Option<Runtime> {
    let has = |name: &str| package.file(name).is_some();
    if has("main.dart") || has("pubspec.yaml") || package.with_extension("dart").next().is_some() {
        Some(Runtime::Dart)
    } else if node_entry::DEFAULT_FILES.into_iter().chain(["package.json"]).any(has) {
        Some(Runtime::Node)
    } else if python::DEFAULT_FILES.into_iter().chain(["requirements.txt"]).any(has) {
        Some(Runtime::Python)
    } else {
        None
    }
}
