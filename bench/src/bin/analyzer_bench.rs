//! Checks the analyzer's speed target of `bench/README.md`: at least 20 MB/s of Dart source on one
//! core, so a 1 MB package is analysed in under 50 ms.
//!
//! It writes packages of realistic Dart (classes, async functions, collections, string
//! interpolation, doc comments, `dart:io` imports with `HttpClient` and relative files, records and
//! patterns, parts and exports) and times `analyzer::analyze` over them, end to end: reading,
//! parsing, the library graph, resolution and every rule.
//!
//! `cargo run --release -p bench --bin analyzer-bench [-- --quick]`; exits 1 when a target is missed.

use std::path::Path;
use std::time::{Duration, Instant};

use analyzer::{analyze, Options, Verdict};

fn library_source(index: usize) -> String {
    format!(
        r#"import 'dart:async';
import 'dart:convert';
import 'dart:io' show HttpClient, File;

import 'models_{index}.dart';

part 'parts/extra_{index}.dart';

/// Fetches and summarises orders for customer {index}.
///
/// Comments mention Process.run and exit(1), which must not be flagged.
class OrderService{index} {{
  OrderService{index}(this.baseUrl, {{this.retries = 3}});

  final String baseUrl;
  final int retries;
  final _cache = <String, Map<String, dynamic>>{{}};

  Future<Map<String, dynamic>> fetch(String id) async {{
    if (_cache.containsKey(id)) return _cache[id]!;
    final client = HttpClient();
    try {{
      final request = await client.getUrl(Uri.parse('$baseUrl/orders/$id?expand=lines'));
      final response = await request.close();
      final text = await response.transform(utf8.decoder).join();
      final decoded = jsonDecode(text) as Map<String, dynamic>;
      _cache[id] = decoded;
      return decoded;
    }} finally {{
      client.close();
    }}
  }}

  Future<List<Order{index}>> recent(List<String> ids) async {{
    final orders = <Order{index}>[];
    for (final id in ids) {{
      final json = await fetch(id);
      final (total, count) = summarize(json['lines'] as List<dynamic>);
      orders.add(Order{index}(id: id, total: total, lines: count));
    }}
    return orders..sort((a, b) => b.total.compareTo(a.total));
  }}

  (double, int) summarize(List<dynamic> lines) {{
    var total = 0.0;
    for (final line in lines.cast<Map<String, dynamic>>()) {{
      total += (line['price'] as num) * (line['quantity'] as num);
    }}
    return (total, lines.length);
  }}

  Future<String> template() => File('templates/order_{index}.txt').readAsString();

  String describe(Order{index} order) => switch (order.total) {{
        > 1000 => 'large order ${{order.id}} with ${{order.lines}} lines',
        > 100 => 'medium order ${{order.id}}',
        _ => 'small order ${{order.id}}',
      }};
}}
"#
    )
}

fn models_source(index: usize) -> String {
    format!(
        r#"/// An order as the service sees it.
class Order{index} {{
  const Order{index}({{required this.id, required this.total, required this.lines}});

  final String id;
  final double total;
  final int lines;

  Map<String, Object> toJson() => {{'id': id, 'total': total, 'lines': lines}};

  @override
  String toString() => 'Order{index}($id, $total, $lines)';
}}

enum Status{index} {{ pending, paid, shipped, cancelled }}

extension Status{index}Label on Status{index} {{
  String get label => name[0].toUpperCase() + name.substring(1);
}}
"#
    )
}

fn part_source(index: usize) -> String {
    format!(
        r#"part of '../service_{index}.dart';

const retryDelays{index} = [Duration(milliseconds: 10), Duration(milliseconds: 100), Duration(seconds: 1)];

Future<T> withRetry{index}<T>(Future<T> Function() action) async {{
  for (final delay in retryDelays{index}) {{
    try {{
      return await action();
    }} on Exception catch (error) {{
      print('retrying after $error');
      await Future<void>.delayed(delay);
    }}
  }}
  return action();
}}
"#
    )
}

/// Writes a package of `libraries` × 3 files; returns its size in bytes.
fn write_package(dir: &Path, libraries: usize) -> u64 {
    std::fs::create_dir_all(dir.join("lib/parts")).unwrap();
    let mut bytes = 0;
    let mut write = |path: &Path, text: String| {
        bytes += text.len() as u64;
        std::fs::write(path, text).unwrap();
    };
    let imports: String = (0..libraries).map(|index| format!("import 'lib/service_{index}.dart';\n")).collect();
    write(
        &dir.join("main.dart"),
        format!(
            "{imports}\nconst function = 'function';\n\n@function\nFuture<Map<String, dynamic>> handler(Map<String, dynamic> body) async {{\n  return {{'ok': true}};\n}}\n"
        ),
    );
    for index in 0..libraries {
        write(&dir.join(format!("lib/service_{index}.dart")), library_source(index));
        write(&dir.join(format!("lib/models_{index}.dart")), models_source(index));
        write(&dir.join(format!("lib/parts/extra_{index}.dart")), part_source(index));
    }
    bytes
}

fn main() {
    let quick = std::env::args().any(|arg| arg == "--quick");
    let work = tempfile::tempdir().unwrap();
    let mut missed = Vec::new();
    println!("## analyzer: Dart source analysed end to end, one thread");
    println!("| package | files | size | best of {} | throughput |\n|---|---|---|---|---|", if quick { 3 } else { 10 });
    for libraries in [250, if quick { 250 } else { 1000 }] {
        let dir = work.path().join(format!("package-{libraries}"));
        let bytes = write_package(&dir, libraries);
        let mut best = Duration::MAX;
        for _ in 0..if quick { 3 } else { 10 } {
            let started = Instant::now();
            let report = analyze(&dir, &Options::default()).expect("the package is readable");
            best = best.min(started.elapsed());
            assert_eq!(report.verdict, Verdict::Accept, "the benchmark package must be clean: {:?}", report.findings);
        }
        let megabytes = bytes as f64 / 1e6;
        let rate = megabytes / best.as_secs_f64();
        println!(
            "| {libraries} libraries | {} | {megabytes:.2} MB | {:.1} ms | **{rate:.1} MB/s** |",
            libraries * 3 + 1,
            best.as_secs_f64() * 1e3
        );
        if rate < 20.0 {
            missed.push(format!("{rate:.1} MB/s on {megabytes:.2} MB"));
        }
        let per_megabyte_ms = best.as_secs_f64() * 1e3 / megabytes;
        println!("(a 1 MB package takes about {per_megabyte_ms:.0} ms at this rate; target < 50 ms)");
    }
    if missed.is_empty() {
        println!("\nall analyzer targets met");
    } else {
        eprintln!("targets missed: {}", missed.join("; "));
        std::process::exit(1);
    }
}
