//! SARIF 2.1.0, for code-scanning tools: one run, every rule with its documentation, one result
//! per finding.

use serde_json::{json, Value};

use crate::report::{Report, Severity};
use crate::rules;

pub fn render_sarif(report: &Report) -> String {
    let rule_descriptors: Vec<Value> = rules::ALL
        .iter()
        .map(|rule| {
            json!({
                "id": rule.id,
                "name": rule.id,
                "shortDescription": { "text": rule.summary },
                "fullDescription": { "text": format!("{} {}", rule.what, rule.why) },
                "help": { "text": format!("{}\n\nExample:\n{}\n\nInstead:\n{}", rule.what, rule.example, rule.instead) },
                "defaultConfiguration": { "level": level(rule.severity) },
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| {
            json!({
                "ruleId": finding.rule,
                "ruleIndex": rules::ALL.iter().position(|rule| rule.id == finding.rule),
                "level": level(finding.severity),
                "message": { "text": format!("{}\n{}", finding.message, finding.help) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": finding.file, "uriBaseId": "%SRCROOT%" },
                        "region": { "startLine": finding.line, "startColumn": finding.column },
                    }
                }],
            })
        })
        .collect();
    let sarif = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": {
                "name": "containerpub-analyzer",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rule_descriptors,
            }},
            "results": results,
            "properties": { "verdict": report.verdict, "runtime": report.runtime, "entry": report.entry },
        }],
    });
    serde_json::to_string_pretty(&sarif).expect("SARIF documents always serialize")
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}
