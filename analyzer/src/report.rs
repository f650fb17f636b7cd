//! What an analysis produces: findings, the entry, the verdict. Findings are data, never errors.

use serde::Serialize;

/// How serious a finding is. Any error rejects the package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// One problem, at a place in one file of the package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: &'static str,
    pub severity: Severity,
    /// Path relative to the package directory, with `/` separators.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    pub help: String,
}

/// The function's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Dart,
    Node,
    Python,
}

impl Runtime {
    pub fn as_str(self) -> &'static str {
        match self {
            Runtime::Dart => "dart",
            Runtime::Node => "node",
            Runtime::Python => "python",
        }
    }
}

/// How the platform will run the function: `handler` in warm workers, `main` one process per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryMode {
    Handler,
    Main,
}

impl EntryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryMode::Handler => "handler",
            EntryMode::Main => "main",
        }
    }
}

/// The file that runs, the function a warm worker calls, and what the source says about the mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// Relative to the package directory, `/`-separated.
    pub file: String,
    /// The function a warm worker calls: `handler` unless the deploy named another.
    pub function: String,
    /// Dart: the mode, read from the `@function` annotation. Node and Python: `handler` when the
    /// file may export `function` (the platform loads it to settle the mode), `main` when it
    /// cannot (a script, never loaded at deploy).
    pub mode: EntryMode,
    /// Why, in words for the deploy's answer.
    pub reason: String,
    /// The calling convention a manifest beside the code says the platform calls it with
    /// (`lambda`, `lambda-v1`, `openfaas`); `None`: detected when it loads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<String>,
    /// Where that shape comes from, in words for the deploy's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape_reason: Option<String>,
    /// The function's name in that manifest, as a name here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Entry {
    pub fn new(file: &str, function: &str, mode: EntryMode, reason: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            function: function.into(),
            mode,
            reason: reason.into(),
            shape: None,
            shape_reason: None,
            name: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Accept,
    Reject,
}

/// The result of analysing one package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub runtime: Runtime,
    /// `None` when no entry could be found (the package is then rejected).
    pub entry: Option<Entry>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(runtime: Runtime, entry: Option<Entry>, mut findings: Vec<Finding>) -> Self {
        findings.sort_by(|a, b| (&a.file, a.line, a.column, a.rule).cmp(&(&b.file, b.line, b.column, b.rule)));
        findings.dedup();
        let rejected = entry.is_none() || findings.iter().any(|finding| finding.severity == Severity::Error);
        Self { verdict: if rejected { Verdict::Reject } else { Verdict::Accept }, runtime, entry, findings }
    }

    pub fn count(&self, severity: Severity) -> usize {
        self.findings.iter().filter(|finding| finding.severity == severity).count()
    }
}
