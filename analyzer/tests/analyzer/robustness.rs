//! Hostile input must never panic the front ends: every fixture source, mutated thousands of
//! times (byte flips, truncations, insertions of syntax-heavy fragments, deep nesting), is
//! analysed. The cargo-fuzz target (`analyzer/fuzz`) explores the same space for longer.

use analyzer::{analyze, Options, RuntimeChoice};

use crate::fixtures_dir;

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

const FRAGMENTS: [&str; 12] = [
    "import 'dart:io' as x;",
    "x.Process.run",
    "part of 'main.dart';",
    "export 'dart:io';",
    "r'''",
    "\"\"\"",
    "${",
    "\\u{",
    "catch (e) {",
    "@function",
    "typedef P = ",
    "((((((((((",
];

fn mutate(source: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut bytes = source.to_vec();
    for _ in 0..1 + rng.below(4) {
        let position = rng.below(bytes.len() + 1);
        match rng.below(4) {
            0 if !bytes.is_empty() => {
                let index = position.min(bytes.len() - 1);
                bytes[index] ^= 1 << rng.below(8);
            }
            1 => bytes.truncate(position),
            2 => {
                let fragment = FRAGMENTS[rng.below(FRAGMENTS.len())].as_bytes();
                bytes.splice(position..position, fragment.iter().copied());
            }
            _ => {
                let depth = 1 + rng.below(3000);
                let nested: Vec<u8> =
                    std::iter::repeat_n(b'(', depth).chain(std::iter::repeat_n(b')', depth)).collect();
                bytes.splice(position..position, nested);
            }
        }
    }
    bytes
}

#[test]
fn mutated_sources_never_panic_any_front_end() {
    let mut sources = Vec::new();
    for case in std::fs::read_dir(fixtures_dir()).unwrap() {
        let package = case.unwrap().path().join("package");
        for name in ["main.dart", "index.js", "main.py", "pubspec.yaml"] {
            if let Ok(source) = std::fs::read(package.join(name)) {
                sources.push((name, source));
            }
        }
    }
    assert!(sources.len() >= 20);
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    let work = tempfile::tempdir().unwrap();
    let mut analysed = 0;
    for round in 0..1_500 {
        let (name, source) = &sources[round % sources.len()];
        let package = work.path().join(format!("p{round}"));
        std::fs::create_dir_all(&package).unwrap();
        std::fs::write(package.join(name), mutate(source, &mut rng)).unwrap();
        let runtime = match *name {
            "index.js" => RuntimeChoice::Node,
            "main.py" => RuntimeChoice::Python,
            _ => RuntimeChoice::Dart,
        };
        analyze(&package, &Options { runtime, ..Options::default() }).unwrap();
        std::fs::remove_dir_all(&package).unwrap();
        analysed += 1;
    }
    assert_eq!(analysed, 1_500);
}
