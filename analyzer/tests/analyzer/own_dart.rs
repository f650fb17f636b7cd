//! The project's own Dart files pass the analyzer: the warm-worker adapter and the generated entry
//! (from `prewarm/runtimes/dart/`), next to a seed-style function.

use analyzer::{analyze, EntryMode, Options, Severity, Verdict};

const SEED_FUNCTION: &str = r#"import 'dart:convert';

const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  return {'message': 'Hello, ${body['name'] ?? 'world'}!', 'echo': jsonEncode(body)};
}
"#;

#[test]
fn the_dart_runtime_adapter_and_generated_entry_pass_the_analyzer() {
    let runtimes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../prewarm/runtimes/dart");
    let package = tempfile::tempdir().unwrap();
    std::fs::write(package.path().join("main.dart"), SEED_FUNCTION).unwrap();
    std::fs::copy(runtimes.join("containerpub_adapter.dart"), package.path().join("containerpub_adapter.dart"))
        .unwrap();
    let entry = std::fs::read_to_string(runtimes.join("entry.dart.template"))
        .unwrap()
        .replace("{{FUNCTION_MAIN_URI}}", "main.dart")
        .replace("{{FUNCTION_NAME}}", "handler")
        .replace("{{ADAPTER_URI}}", "containerpub_adapter.dart");
    std::fs::write(package.path().join("containerpub_entry.dart"), entry).unwrap();

    let report = analyze(package.path(), &Options::default()).unwrap();
    let errors: Vec<_> = report.findings.iter().filter(|finding| finding.severity == Severity::Error).collect();
    assert!(errors.is_empty(), "the project's Dart files have errors: {errors:#?}");
    assert_eq!(report.verdict, Verdict::Accept);
    assert_eq!(report.entry.map(|entry| entry.mode), Some(EntryMode::Handler));
    // The adapter opens its protocol descriptors from computed paths: a warning, said out loud.
    assert!(report
        .findings
        .iter()
        .all(|finding| finding.rule == "non-literal-path" && finding.file == "containerpub_adapter.dart"));
}

/// Every example under `examples/RUNTIME/NAME` is accepted, as its runtime, with a warm handler
/// and without a single finding.
#[test]
fn every_example_passes_the_analyzer() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut checked = 0;
    for runtime in ["dart", "node", "python"] {
        for example in std::fs::read_dir(examples.join(runtime)).unwrap() {
            let example = example.unwrap().path();
            let report = analyze(&example, &Options::default()).unwrap();
            assert_eq!(report.verdict, Verdict::Accept, "{}: {:#?}", example.display(), report.findings);
            assert!(report.findings.is_empty(), "{}: {:#?}", example.display(), report.findings);
            assert_eq!(report.runtime.as_str(), runtime, "{}", example.display());
            assert_eq!(report.entry.map(|entry| entry.mode), Some(EntryMode::Handler), "{}", example.display());
            checked += 1;
        }
    }
    assert_eq!(
        checked, 14,
        "the seed's three functions and the envelope example, in three runtimes, and the packages example in Node and Python"
    );
}
