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

fn package_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let package = tempfile::tempdir().unwrap();
    for (file, contents) in files {
        let path = package.path().join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    package
}

fn with_entry(entry: &str) -> Options {
    Options { entry: Some(entry.parse().unwrap()), ..Options::default() }
}

#[test]
fn an_explicit_entry_picks_the_runtime_the_file_and_the_function() {
    let package = package_with(&[
        ("src/app.py", "def handle(body):\n    return body\n"),
        ("main.py", "print('{}')\n"),
        ("lib/app.js", "exports.serve = async () => 1;\n"),
        ("lib/app.dart", "const function = 'function';\n@function\nint serve(Map<String, dynamic> body) => 1;\n"),
    ]);
    let cases = [
        ("src/app.py:handle", "python", "src/app.py", "handle", "handler"),
        // A file named without its function: the function found as in a default file
        // (`handle`, OpenFaaS's name, here).
        ("./src/app.py", "python", "src/app.py", "handle", "handler"),
        ("lib/app.js:serve", "node", "lib/app.js", "serve", "handler"),
        ("lib/app.dart:serve", "dart", "lib/app.dart", "serve", "handler"),
    ];
    for (entry, runtime, file, function, mode) in cases {
        let report = analyze(package.path(), &with_entry(entry)).unwrap();
        let found = report.entry.clone().unwrap_or_else(|| panic!("{entry}: {:?}", report.findings));
        assert_eq!(report.runtime.as_str(), runtime, "{entry}");
        assert_eq!(
            (found.file.as_str(), found.function.as_str(), found.mode.as_str()),
            (file, function, mode),
            "{entry}"
        );
    }
    // A Dart function the deploy names must carry `@function` like `handler` does.
    let report = analyze(package.path(), &with_entry("lib/app.dart:other")).unwrap();
    assert!(report.entry.is_none());
    assert!(report.findings.iter().any(|finding| finding.message == "lib/app.dart has no top-level `other` function"));
}

#[test]
fn an_explicit_entry_that_is_not_there_or_climbs_out_is_refused() {
    let package = package_with(&[("main.py", "def handler(body):\n    return body\n")]);
    let report = analyze(package.path(), &with_entry("app.py:handle")).unwrap();
    assert!(report.entry.is_none());
    assert!(report
        .findings
        .iter()
        .any(|finding| finding.rule == "missing-entry" && finding.message.contains("no app.py (named as the entry)")));
    // A named function the file cannot export is a finding, not a script.
    let report = analyze(package.path(), &with_entry("main.py:serve")).unwrap();
    assert!(report.entry.is_none());
    assert!(report
        .findings
        .iter()
        .any(|finding| finding.message == "main.py cannot export `serve`, the function named as the entry"));
    for bad in ["../x.py", "/etc/passwd", "a.py:not-a-name", "a.py:1st", "", ".:handler"] {
        assert!(bad.parse::<analyzer::EntrySpec>().is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn the_entry_reason_says_why_a_file_is_a_script_or_is_loaded() {
    let script = package_with(&[("main.py", "import json, os\nprint(json.dumps({'ok': True}))\n")]);
    let entry = analyze(script.path(), &Options::default()).unwrap().entry.unwrap();
    assert_eq!(entry.reason, "main.py never mentions `handler`: it runs as a script, one process per call");
    let lambda = package_with(&[("main.py", "handler = lambda body: body\n")]);
    let entry = analyze(lambda.path(), &Options::default()).unwrap().entry.unwrap();
    assert_eq!(entry.reason, "main.py names `handler`, so it may define `handler`: loading it decides");
    let cjs = package_with(&[("index.js", "async function main(e) { return e; }\nmodule.exports = main;\n")]);
    let entry = analyze(cjs.path(), &Options::default()).unwrap().entry.unwrap();
    assert_eq!(entry.mode.as_str(), "handler", "{}", entry.reason);
    let this_export = package_with(&[("index.js", "this.handler = () => 1;\n")]);
    assert_eq!(analyze(this_export.path(), &Options::default()).unwrap().entry.unwrap().mode.as_str(), "handler");
    let inner_this =
        package_with(&[("index.js", "function f() { return this; }\nconsole.log(JSON.stringify(f() ? 1 : 2));\n")]);
    assert_eq!(analyze(inner_this.path(), &Options::default()).unwrap().entry.unwrap().mode.as_str(), "main");
}

#[test]
fn syntax_errors_are_placed_and_explained_with_each_runtimes_own_checker() {
    let python = package_with(&[("main.py", "def handler(body)\n    return {'ok': True}\n")]);
    let report = analyze(python.path(), &Options::default()).unwrap();
    let error = report.findings.iter().find(|finding| finding.rule == "parse-error").unwrap();
    assert_eq!((error.line, error.column), (1, 18), "{error:?}");
    assert_eq!(error.message, "syntax error: expected `:` at the end of `def handler(body)`");
    assert!(error.help.contains("python3 -m py_compile main.py"), "{}", error.help);

    let node = package_with(&[("index.js", "exports.handler = async (body) => {\n  return { ok: true \n};\n")]);
    let report = analyze(node.path(), &Options::default()).unwrap();
    let error = report.findings.iter().find(|finding| finding.rule == "parse-error").unwrap();
    assert!(error.message.starts_with("syntax error: expected"), "{error:?}");
    assert!(error.help.contains("node --check index.js"), "{}", error.help);

    // A Dart file missing a `}`: the parse error only, no finding asking for an annotation that is there.
    let dart = package_with(&[(
        "main.dart",
        "const function = 'function';\n@function\nint other(Map<String, dynamic> body) {\n  if (true) {\n    return 1;\n  \n  return 2;\n}\n",
    )]);
    let report = analyze(dart.path(), &Options::default()).unwrap();
    let rules: Vec<&str> = report.findings.iter().map(|finding| finding.rule).collect();
    assert!(rules.iter().all(|rule| *rule == "parse-error"), "{:?}", report.findings);
    let error = &report.findings[0];
    assert_eq!(error.message, "syntax error: expected `}`", "{error:?}");
    assert!(error.help.contains("dart analyze"), "{}", error.help);
}

/// Installed packages are dependencies: their findings are warnings naming them and their native
/// modules are allowed, unless the operator says otherwise; the function's own code keeps every
/// rule in full.
#[test]
fn installed_packages_are_judged_as_dependencies() {
    let package = package_with(&[
        ("main.py", "import vendor_lib\n\ndef handler(body):\n    return vendor_lib.run()\n"),
        (
            "vendor_lib/__init__.py",
            "import subprocess\nimport socket\n\ndef run(address=None):\n    s = socket.socket()\n    if address:\n        s.bind(address)\n    return 1\n",
        ),
        ("vendor_lib/_speedups.cpython-311-x86_64-linux-gnu.so", "\x7fELF"),
        (
            "vendor_lib-1.0.dist-info/RECORD",
            "vendor_lib/__init__.py,sha256=a,10\nvendor_lib/_speedups.cpython-311-x86_64-linux-gnu.so,sha256=b,4\n",
        ),
        ("node_modules/addon/build/Release/addon.node", "\x7fELF"),
    ]);
    let report = analyze(package.path(), &Options::default()).unwrap();
    assert_eq!(report.verdict, analyzer::Verdict::Accept, "{:?}", report.findings);
    let in_dependency: Vec<_> =
        report.findings.iter().filter(|f| f.message.contains("in the installed package")).collect();
    assert_eq!(in_dependency.len(), 4, "{:?}", report.findings);
    assert!(
        in_dependency.iter().any(|f| f.rule == "python-process-call" && f.line == 7),
        "read line by line, still found"
    );
    assert!(in_dependency.iter().all(|f| f.severity == analyzer::Severity::Warning));
    assert!(in_dependency.iter().any(|f| f.message.contains("`vendor-lib`")));
    assert!(in_dependency.iter().any(|f| f.message.contains("`addon`")));

    let strict = Options { dependency_findings_fatal: true, ..Options::default() };
    let report = analyze(package.path(), &strict).unwrap();
    let errors: Vec<_> =
        report.findings.iter().filter(|f| f.severity == analyzer::Severity::Error).map(|f| f.rule).collect();
    assert_eq!(errors, ["python-denied-module", "python-process-call"], "all but native code: {:?}", report.findings);
    let no_native = Options { deny_native_dependencies: true, ..Options::default() };
    let report = analyze(package.path(), &no_native).unwrap();
    let errors: Vec<_> =
        report.findings.iter().filter(|f| f.severity == analyzer::Severity::Error).map(|f| f.file.as_str()).collect();
    assert_eq!(
        errors,
        ["node_modules/addon/build/Release/addon.node", "vendor_lib/_speedups.cpython-311-x86_64-linux-gnu.so"]
    );

    // The same import in the function's own code is still an error.
    let own = package_with(&[("main.py", "import subprocess\n\ndef handler(body):\n    return 1\n")]);
    assert_eq!(analyze(own.path(), &Options::default()).unwrap().verdict, analyzer::Verdict::Reject);
}
