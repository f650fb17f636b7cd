//! Hostile Dart source must never panic the front end (parsing, directives, URI decoding, the
//! library graph, resolution, every rule). Run: `cd analyzer/fuzz && cargo fuzz run dart_front_end`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let source = String::from_utf8_lossy(data);
    let (_entry, findings) = analyzer::dart::analyze_main_source(&source, &analyzer::Options::default());
    // Every finding points inside the text it came from.
    for finding in findings {
        assert!(finding.line >= 1 && finding.column >= 1);
    }
});
