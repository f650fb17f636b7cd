//! The `containerpub-analyzer` binary: exit codes, and the three output formats.

use std::process::Command;

use crate::fixtures_dir;

fn analyzer(args: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_containerpub-analyzer")).args(args).output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn case(name: &str) -> String {
    fixtures_dir().join(name).join("package").display().to_string()
}

#[test]
fn exit_codes_are_0_accepted_1_rejected_2_usage_or_io() {
    assert_eq!(analyzer(&["check", &case("accept_simple_handler")]).0, 0);
    assert_eq!(analyzer(&["check", &case("reject_prefixed_import")]).0, 1);
    let (code, _, stderr) = analyzer(&["check", "/nonexistent/package"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("cannot read the package directory /nonexistent/package"), "{stderr}");
    assert_eq!(analyzer(&["check", &case("accept_simple_handler"), "--format", "yaml"]).0, 2);
    assert_eq!(analyzer(&["frobnicate"]).0, 2);
}

#[test]
fn text_output_reads_like_a_compiler() {
    let (_, stdout, _) = analyzer(&["check", &case("reject_prefixed_import")]);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("main.dart:7:31: error[denied-io-member]: `Process` from dart:io starts processes"));
    assert!(lines.next().unwrap().starts_with("  help: "));
    assert_eq!(
        stdout.lines().last(),
        Some("rejected: 1 error(s), 0 warning(s); runtime dart, entry main.dart (handler)")
    );
}

#[test]
fn json_output_has_the_documented_fields() {
    let (code, stdout, _) = analyzer(&["check", &case("reject_file_paths"), "--format", "json"]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["verdict"], "reject");
    assert_eq!(report["runtime"], "dart");
    assert_eq!(
        report["entry"],
        serde_json::json!({"file": "main.dart", "function": "handler", "mode": "handler",
                           "reason": "main.dart has `@function handler`: served warm"})
    );
    let first = &report["findings"][0];
    for field in ["rule", "severity", "file", "line", "column", "message", "help"] {
        assert!(!first[field].is_null(), "findings carry {field}: {first}");
    }
    let severities: Vec<&str> =
        report["findings"].as_array().unwrap().iter().map(|finding| finding["severity"].as_str().unwrap()).collect();
    assert!(severities.contains(&"error") && severities.contains(&"warning"));
    let (_, python, _) = analyzer(&["check", &case("python_main_only"), "--format", "json", "--runtime", "python"]);
    let python: serde_json::Value = serde_json::from_str(&python).unwrap();
    assert_eq!((python["verdict"].as_str(), python["entry"]["mode"].as_str()), (Some("accept"), Some("main")));
}

#[test]
fn sarif_output_is_a_2_1_0_log_with_rules_and_results() {
    let (_, stdout, _) = analyzer(&["check", &case("reject_show_hide"), "--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(sarif["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run = &sarif["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "containerpub-analyzer");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), analyzer::rules::ALL.len());
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let result = &results[0];
    assert_eq!(result["ruleId"], "denied-io-member");
    assert_eq!(result["level"], "error");
    assert_eq!(rules[result["ruleIndex"].as_u64().unwrap() as usize]["id"], "denied-io-member");
    let region = &result["locations"][0]["physicalLocation"]["region"];
    assert_eq!((region["startLine"].as_u64(), region["startColumn"].as_u64()), (Some(8), Some(9)));
}

#[test]
fn rules_lists_every_rule_with_its_documentation() {
    let (code, stdout, _) = analyzer(&["rules"]);
    assert_eq!(code, 0);
    for rule in analyzer::rules::ALL {
        assert!(stdout.contains(&format!("{} ({}", rule.id, rule.severity.as_str())), "{} missing", rule.id);
    }
    for heading in ["What it flags:", "Why:", "Example:", "Instead:"] {
        assert_eq!(stdout.matches(heading).count(), analyzer::rules::ALL.len(), "{heading}");
    }
}
