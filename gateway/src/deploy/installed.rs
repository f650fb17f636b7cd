//! Packages installed at deploy meet the analyzer's dependency policy (`[analyzer]`), as packages
//! uploaded with a function do: their findings are added to the version's analysis as warnings
//! naming the package, or refuse the version where the operator made them fatal
//! (`dependency_findings_fatal`, `deny_native_dependencies`).

use std::path::PathBuf;

use crate::app::App;
use crate::store::VersionRecord;

/// Judges the packages in `dir` and adds the findings to `version`'s analysis; `Err` with the
/// findings that refuse it.
pub(super) async fn judge(app: &App, version: &mut VersionRecord, dir: PathBuf) -> Result<(), String> {
    let runtime = match version.runtime.as_str() {
        "node" => analyzer::Runtime::Node,
        "python" => analyzer::Runtime::Python,
        _ => return Ok(()),
    };
    let options = analyzer::Options {
        dependency_findings_fatal: app.config.analyzer.dependency_findings_fatal,
        deny_native_dependencies: app.config.analyzer.deny_native_dependencies,
        ..analyzer::Options::default()
    };
    let judged = tokio::task::spawn_blocking(move || analyzer::judge_installed(runtime, &dir, &options))
        .await
        .map_err(|error| format!("the analysis of the installed packages failed: {error}"))?;
    let findings = judged.map_err(|error| format!("the installed packages could not be read: {error}"))?;
    if findings.is_empty() {
        return Ok(());
    }
    let mut analysis: serde_json::Value = serde_json::from_str(&version.analysis).unwrap_or_default();
    if let Some(list) = analysis.get_mut("findings").and_then(serde_json::Value::as_array_mut) {
        list.extend(findings.iter().map(|finding| serde_json::to_value(finding).expect("findings serialize")));
        version.analysis = analysis.to_string();
    }
    let refusing: Vec<String> = findings
        .iter()
        .filter(|finding| finding.severity == analyzer::Severity::Error)
        .map(|finding| format!("{}:{}: {}", finding.file, finding.line, finding.message))
        .collect();
    if refusing.is_empty() {
        return Ok(());
    }
    let shown = refusing.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
    let more = refusing.len().saturating_sub(5);
    Err(format!(
        "the installed packages have {} finding(s) the server's [analyzer] policy refuses: {shown}{}",
        refusing.len(),
        if more > 0 { format!(" (and {more} more, in the version's analysis)") } else { String::new() }
    ))
}
