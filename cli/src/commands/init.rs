//! `init`: a Dart function skeleton that passes the analyzer and deploys as it is.

use std::path::PathBuf;

use anyhow::Context;

use crate::output::Output;

const MAIN: &str = r#"// Called with the request body parsed as JSON (an empty map for an empty body). Return a JSON
// value, or an envelope: {'statusCode': 201, 'headers': {...}, 'body': ...}.
// GREETING comes from the deploy: dart_cloud deploy --env GREETING=Hi
import 'dart:io' show Platform;

const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  final greeting = Platform.environment['GREETING'] ?? 'Hello';
  final name = body['name'] ?? 'world';
  return {'message': '$greeting, $name!'};
}
"#;

const TEST: &str = r#"import 'package:test/test.dart';

import '../main.dart';

void main() {
  test('greets by name', () async {
    expect(await handler({'name': 'Ada'}), {'message': 'Hello, Ada!'});
  });
}
"#;

const ANALYSIS_OPTIONS: &str = "include: package:lints/recommended.yaml\n";

pub fn init(output: &Output, name: Option<String>) -> anyhow::Result<()> {
    let directory = match &name {
        Some(name) => PathBuf::from(name),
        None => std::env::current_dir()?,
    };
    let function_name = directory
        .canonicalize()
        .unwrap_or_else(|_| directory.clone())
        .file_name()
        .map(|name| name.to_string_lossy().to_ascii_lowercase())
        .context("cannot tell the function's name from the directory")?;
    let package = function_name.replace('-', "_");
    let files = [
        ("pubspec.yaml", format!("name: {package}\ndescription: A ContainerPub function.\npublish_to: none\n\nenvironment:\n  sdk: ^3.0.0\n\ndev_dependencies:\n  lints: ^4.0.0\n  test: ^1.24.0\n")),
        ("main.dart", MAIN.to_string()),
        ("analysis_options.yaml", ANALYSIS_OPTIONS.to_string()),
        ("test/main_test.dart", TEST.to_string()),
        (".gitignore", ".dart_tool/\nbuild/\n".to_string()),
    ];
    for (file, _) in &files {
        let path = directory.join(file);
        anyhow::ensure!(
            !path.exists(),
            "{} already exists; init writes only into a new or empty directory",
            path.display()
        );
    }
    for (file, contents) in &files {
        let path = directory.join(file);
        std::fs::create_dir_all(path.parent().expect("a file in a directory"))?;
        std::fs::write(&path, contents).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let dir = name.as_deref().unwrap_or(".");
    output.note(&format!(
        "Created {} (function {function_name}). Next:\n  dart_cloud deploy {dir}\n  dart_cloud invoke {function_name} --data '{{\"name\":\"Ada\"}}'\n  dart_cloud deploy {dir} --env GREETING=Hi    # then invoke again\n  dart_cloud logs {function_name}",
        directory.display(),
    ));
    Ok(())
}
