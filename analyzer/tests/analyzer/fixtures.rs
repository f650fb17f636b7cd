//! Each directory under `tests/fixtures/` is a case: `package/` is analysed, `expected.txt` holds
//! the verdict, the entry and every finding as `rule file:line`. Benign look-alikes have cases of
//! their own (`accept_*`), so a rule that fires too eagerly fails here too.

use analyzer::{analyze, Options, Report};

use crate::fixtures_dir;

fn summarize(report: &Report) -> String {
    let entry = report.entry.as_ref().map_or_else(
        || "none".to_string(),
        |entry| format!("{} {}", entry.file, serde_json::to_value(entry.mode).unwrap().as_str().unwrap()),
    );
    let verdict = serde_json::to_value(report.verdict).unwrap();
    let mut lines = vec![format!("verdict: {}", verdict.as_str().unwrap()), format!("entry: {entry}")];
    let mut findings: Vec<String> =
        report.findings.iter().map(|finding| format!("{} {}:{}", finding.rule, finding.file, finding.line)).collect();
    findings.sort();
    lines.extend(findings);
    lines.join("\n") + "\n"
}

#[test]
fn every_fixture_gives_exactly_its_expected_findings() {
    let mut cases: Vec<_> = std::fs::read_dir(fixtures_dir()).unwrap().map(|entry| entry.unwrap().path()).collect();
    cases.sort();
    assert!(cases.len() >= 25, "only {} fixture cases found", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let expected = std::fs::read_to_string(case.join("expected.txt"))
            .unwrap_or_else(|_| panic!("{} has no expected.txt", case.display()));
        let report = analyze(&case.join("package"), &Options::default()).unwrap();
        let actual = summarize(&report);
        if actual != expected {
            failures.push(format!(
                "== {}\n-- expected\n{expected}-- actual\n{actual}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

#[test]
fn an_allowed_dependency_and_allowed_sources_are_accepted() {
    let package = fixtures_dir().join("reject_pubspec_dependencies/package");
    let options = Options {
        allowed_packages: vec!["process_run".into(), "ffi".into()],
        allow_path_dependencies: true,
        allow_git_dependencies: true,
        allow_dependency_overrides: true,
        ..Options::default()
    };
    let report = analyze(&package, &options).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let stricter = Options { denied_packages: vec!["http".into()], ..options };
    let report = analyze(&package, &stricter).unwrap();
    assert!(report
        .findings
        .iter()
        .any(|finding| finding.rule == "denied-package" && finding.message.contains("`http`")));
}

#[test]
fn a_symbolic_link_anywhere_in_the_package_rejects_it() {
    let package = tempfile::tempdir().unwrap();
    std::fs::write(
        package.path().join("main.dart"),
        "import 'lib/helpers.dart';\nconst function = 'function';\n@function\nint handler(Map<String, dynamic> body) => 1;\n",
    )
    .unwrap();
    std::fs::create_dir(package.path().join("lib")).unwrap();
    // Dart would follow the link and compile whatever it points at; the analyzer must refuse it.
    std::os::unix::fs::symlink("/etc/hostname", package.path().join("lib/helpers.dart")).unwrap();
    std::os::unix::fs::symlink("/tmp", package.path().join("shared")).unwrap();
    let report = analyze(package.path(), &Options::default()).unwrap();
    let links: Vec<&str> = report
        .findings
        .iter()
        .filter(|finding| finding.rule == "symlink-in-package")
        .map(|finding| finding.file.as_str())
        .collect();
    assert_eq!(links, vec!["lib/helpers.dart", "shared"]);
    assert_eq!(report.verdict, analyzer::Verdict::Reject);
}
