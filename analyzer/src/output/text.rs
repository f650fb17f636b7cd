//! `file:line:col: severity[rule]: message`, then the help, then a verdict line.

use crate::report::{Report, Severity, Verdict};

pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    for finding in &report.findings {
        out.push_str(&format!(
            "{}:{}:{}: {}[{}]: {}\n",
            finding.file,
            finding.line,
            finding.column,
            finding.severity.as_str(),
            finding.rule,
            finding.message
        ));
        for (index, line) in finding.help.lines().enumerate() {
            out.push_str(if index == 0 { "  help: " } else { "        " });
            out.push_str(line);
            out.push('\n');
        }
    }
    let entry = report.entry.as_ref().map_or_else(
        || "no entry".to_string(),
        |entry| format!("entry {} ({:?})", entry.file, entry.mode).to_lowercase(),
    );
    let verdict = match report.verdict {
        Verdict::Accept => "accepted",
        Verdict::Reject => "rejected",
    };
    out.push_str(&format!(
        "{verdict}: {} error(s), {} warning(s); runtime {}, {entry}\n",
        report.count(Severity::Error),
        report.count(Severity::Warning),
        report.runtime.as_str()
    ));
    out
}
