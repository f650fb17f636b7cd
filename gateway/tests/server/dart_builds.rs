//! A Dart deploy's build steps through the real server, with the stand-in `dart` of
//! `prewarm/tests/workers/stand_in/dart.sh` first on the server's PATH: about commands and error
//! mapping only (no Dart code runs here; `scripts/dart-e2e` runs real Dart where there is an SDK).

use serde_json::Value;

use crate::harness::{archive, code, Backend, Server};

const STAND_IN: &str = include_str!("../../../prewarm/tests/workers/stand_in/dart.sh");

#[test]
fn unresolvable_dependencies_answer_422_with_pubs_message() {
    let sdk = tempfile::tempdir().unwrap();
    std::fs::create_dir(sdk.path().join("bin")).unwrap();
    let dart = sdk.path().join("bin/dart");
    std::fs::write(&dart, STAND_IN.replace("__STATE__", &sdk.path().display().to_string())).unwrap();
    std::fs::set_permissions(&dart, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(sdk.path().join("version"), "Dart SDK version: 3.5.0 (stable)\n").unwrap();
    std::fs::write(sdk.path().join("pub-fails"), "").unwrap();
    let path = format!("{}:{}", sdk.path().join("bin").display(), std::env::var("PATH").unwrap_or_default());
    let Some(server) = Server::start_with_env(Backend::Sqlite, &[("PATH", path)]) else { return };
    let token = server.user("dart@example.com");

    let files = [
        ("pubspec.yaml", "name: fn\nenvironment:\n  sdk: ^3.0.0\ndependencies:\n  nope: ^1.0.0\n"),
        (
            "main.dart",
            "const function = 'function';\n@function\nFuture<Map<String, dynamic>> handler(Map<String, dynamic> body) async => {};\n",
        ),
    ];
    let (status, refused) = server.deploy(&token, "deps", archive(&files), &[]);
    assert_eq!((status, code(&refused)), (422, "dependencies_unresolved"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "version 1's dependencies could not be resolved, so it is not active: dart pub get failed: exit status: 65"
        ),
        "{message}"
    );
    assert!(message.contains("could not find package nope at https://pub.dev"), "{message}");
    // Resolution ran with a worker's environment: nothing of the server's.
    let calls = std::fs::read_to_string(sdk.path().join("calls")).unwrap();
    let resolution = calls.lines().find(|line| line.contains("args=pub get")).unwrap();
    assert!(resolution.contains("PATH=/usr/local/bin:/usr/bin:/bin "), "{resolution}");
    assert!(resolution.ends_with("SECRET="), "{resolution}");
    // The version is kept for inspection; nothing was made active.
    let info: Value = server.get("/api/functions/deps", Some(&token)).json().unwrap();
    assert_eq!(info["active_version"], Value::Null, "{info}");
    let versions: Value = server.get("/api/functions/deps/versions", Some(&token)).json().unwrap();
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
}
