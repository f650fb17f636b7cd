use serde_json::{json, Value};

use crate::both_stores;
use crate::harness::{archive, code, example, gzip, hostile_archive, Server};

const GREETER: &str = "def handler(body):\n    return {'version': VERSION, 'name': body.get('name')}\n";

fn greeter(version: u32) -> Vec<u8> {
    archive(&[("main.py", &format!("VERSION = {version}\n{GREETER}"))])
}

fn call(server: &Server, token: Option<&str>, name: &str) -> (u16, Value) {
    let response = server.post_json(&format!("/fn/{name}"), token, &json!({ "name": "Ada" }));
    let status = response.status().as_u16();
    (status, response.json().unwrap_or(Value::Null))
}

fn deploy_versions_rollback_delete(server: Server) {
    let ada = server.user("ada@example.com");
    let eve = server.user("eve@example.com");

    // The examples deploy and answer.
    for (name, dir) in
        [("py-hello", "examples/python/simple-function"), ("node-hello", "examples/node/simple-function")]
    {
        let (status, body) = server.deploy(&ada, name, example(dir), &[]);
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(body["entry_mode"], "handler");
        assert_eq!(body["analysis"]["verdict"], "accept");
        let (status, result) = call(&server, Some(&ada), name);
        assert_eq!((status, result["message"].as_str()), (200, Some("Hello, Ada!")), "{name}");
    }

    // A Dart function deploys where the server has the SDK; elsewhere the deploy is refused,
    // saying what the operator must install (nothing is stored).
    let (status, dart) = server.deploy(&ada, "dart-hello", example("examples/dart/simple-function"), &[]);
    if server.health()["runtimes"]["dart"].is_null() {
        crate::harness::skip(
            "dart not on PATH (the Dart example's deploy is refused with runtime_unavailable instead)",
        );
        assert_eq!((status, code(&dart)), (422, "runtime_unavailable"), "{dart}");
        let message = dart["error"]["message"].as_str().unwrap();
        assert!(message.contains("Dart SDK") && message.contains("Dart on the server"), "{message}");
        assert_eq!(server.get("/api/functions/dart-hello", Some(&ada)).status(), 404, "nothing was stored");
    } else {
        assert_eq!((status, dart["runtime"].as_str()), (201, Some("dart")), "{dart}");
        let (status, answer) = call(&server, Some(&ada), "dart-hello");
        assert_eq!((status, answer["message"].as_str()), (200, Some("Hello, Ada!")), "{answer}");
    }

    // Versions, a new deploy switching over, rollback, and settings kept per version.
    let (status, first) = server.deploy(&ada, "greeter", greeter(1), &[("public", "true")]);
    assert_eq!((status, first["version"].as_i64()), (201, Some(1)), "{first}");
    assert_eq!(call(&server, None, "greeter").1["version"], 1, "a public function needs no credentials");
    let (status, second) = server.deploy(&ada, "greeter", greeter(2), &[("public", "true")]);
    assert_eq!((status, second["version"].as_i64()), (201, Some(2)));
    assert_eq!(call(&server, None, "greeter").1["version"], 2);
    let id = first["id"].as_str().unwrap();
    assert_eq!(second["id"].as_str(), Some(id), "one function, two versions");
    let versions: Value = server.get("/api/functions/greeter/versions", Some(&ada)).json().unwrap();
    assert_eq!(versions["versions"].as_array().unwrap().len(), 2);
    assert_eq!(versions["active_version"], 2);
    let back = server.post_json("/api/functions/greeter/rollback", Some(&ada), &json!({ "version": 1 }));
    assert_eq!(back.status(), 200);
    assert_eq!(call(&server, None, "greeter").1["version"], 1, "rollback is live at once");
    let missing = server.post_json("/api/functions/greeter/rollback", Some(&ada), &json!({ "version": 9 }));
    assert_eq!(missing.status(), 404);
    let by_id: Value = server.get(&format!("/api/functions/{id}"), Some(&ada)).json().unwrap();
    assert_eq!(by_id["name"], "greeter", "an id works where a name does");
    let listed: Value = server.get("/api/functions", Some(&ada)).json().unwrap();
    // The two examples, the greeter, and the Dart example where the server has Dart.
    let expected = if server.health()["runtimes"]["dart"].is_null() { 3 } else { 4 };
    assert_eq!(listed["functions"].as_array().unwrap().len(), expected);

    // A failed deploy leaves the active version untouched.
    let (status, rejected) = server.deploy(
        &ada,
        "greeter",
        archive(&[("main.py", "import subprocess\ndef handler(b):\n    return subprocess.run(['id'])\n")]),
        &[],
    );
    assert_eq!((status, code(&rejected)), (422, "analysis_rejected"), "{rejected}");
    let findings = rejected["error"]["analysis"]["findings"].as_array().unwrap();
    assert!(findings.iter().any(|finding| finding["file"] == "main.py" && finding["line"] == 1), "{rejected}");
    assert_eq!(call(&server, None, "greeter").1["version"], 1);

    // Another user: cannot see, change or take over the function; the name is taken.
    assert_eq!(server.get("/api/functions/greeter", Some(&eve)).status(), 404);
    assert_eq!(server.get("/api/functions/greeter/logs", Some(&eve)).status(), 404);
    assert_eq!(
        server.client.delete(server.url("/api/functions/greeter")).bearer_auth(&eve).send().unwrap().status(),
        404
    );
    let (status, taken) = server.deploy(&eve, "greeter", greeter(3), &[]);
    assert_eq!((status, code(&taken)), (409, "name_taken"));
    let (status, _) = call(&server, Some(&eve), "py-hello");
    assert_eq!(status, 403, "a private function refuses other users");
    let (status, _) = call(&server, None, "py-hello");
    assert_eq!(status, 401, "a private function needs credentials");

    // Bad names and fields.
    for (name, fields, expected) in [
        ("Bad_Name", vec![], "invalid_name"),
        ("ok", vec![("timeout_ms", "0")], "invalid_field"),
        // The operator's ceiling ([functions] max_timeout_ms, 300 s).
        ("ok", vec![("timeout_ms", "300001")], "invalid_field"),
        ("ok", vec![("memory_mb", "abc")], "invalid_field"),
        ("ok", vec![("env", "[1]")], "invalid_field"),
        ("ok", vec![("runtime", "cobol")], "invalid_field"),
        ("ok", vec![("env", r#"{"LD_PRELOAD": "/x.so"}"#)], "invalid_env"),
        ("ok", vec![("env", r#"{"1BAD": "x"}"#)], "invalid_env"),
    ] {
        let (status, body) = server.deploy(&ada, name, greeter(1), &fields);
        assert_eq!((status, code(&body)), (400, expected), "{name} {fields:?}: {body}");
    }

    // Delete stops it and frees its artifacts.
    let artifacts = server.data_dir.path().join("artifacts");
    let before = std::fs::read_dir(&artifacts).unwrap().count();
    let deleted = server.client.delete(server.url("/api/functions/greeter")).bearer_auth(&ada).send().unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(call(&server, None, "greeter").0, 404);
    assert_eq!(server.get("/api/functions/greeter", Some(&ada)).status(), 404);
    assert_eq!(std::fs::read_dir(&artifacts).unwrap().count(), before - 2, "both versions' archives are gone");
}
both_stores!(deploy_versions_rollback_delete);

fn bad_archives_are_refused(server: Server) {
    let ada = server.user("ada@example.com");
    let zeros = "\0".repeat(8 << 20);
    let many: Vec<(String, &str)> = (0..60).map(|i| (format!("f{i}.txt"), "x")).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(name, data)| (name.as_str(), *data)).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("dot-dot", hostile_archive("../escape.py", tar::EntryType::Regular, b"x"), 400, "archive_bad_entry"),
        ("absolute", hostile_archive("/tmp/abs.py", tar::EntryType::Regular, b"x"), 400, "archive_bad_entry"),
        ("symlink", hostile_archive("link", tar::EntryType::Symlink, b""), 400, "archive_bad_entry"),
        ("device", hostile_archive("dev", tar::EntryType::Char, b""), 400, "archive_bad_entry"),
        (
            "bomb",
            archive(&[("main.py", "def handler(b):\n    return 1\n"), ("zeros", &zeros)]),
            413,
            "archive_expands_too_large",
        ),
        ("too-many", archive(&many), 413, "archive_too_many_entries"),
        ("not-gzip", b"plain text, not an archive".to_vec(), 400, "archive_not_gzip"),
        ("empty", Vec::new(), 400, "archive_empty"),
        ("empty-tar", gzip(&[0u8; 1024]), 400, "archive_empty"),
        ("too-big", vec![0x1f; 1_100_000], 413, "archive_too_large"),
    ];
    for (label, bytes, status, expected) in cases {
        let (got, body) = server.deploy(&ada, "bad", bytes, &[]);
        assert_eq!((got, code(&body)), (status, expected), "{label}: {body}");
    }
    let functions = server.data_dir.path().join("functions");
    let left: Vec<_> = std::fs::read_dir(&functions).unwrap().collect();
    assert!(left.is_empty(), "rejected archives leave nothing behind: {left:?}");
    assert_eq!(server.get("/api/functions/bad", Some(&ada)).status(), 404);
    let missing = server.client.post(server.url("/api/functions/deploy")).bearer_auth(&ada).body("{}").send().unwrap();
    assert_eq!(missing.status(), 400);
}
both_stores!(bad_archives_are_refused);

/// Calls running while deploys and rollbacks replace the version: each is answered by one of the
/// versions, never with an error (a call that found the version it looked up retired goes to
/// the one routed now).
#[test]
fn calls_during_redeploys_are_all_answered() {
    let Some(server) = Server::start(crate::harness::Backend::Sqlite) else { return };
    let ada = server.user("ada@example.com");
    assert_eq!(server.deploy(&ada, "greeter", greeter(1), &[]).0, 201);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut answers = Vec::new();
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        answers.push(call(&server, Some(&ada), "greeter"));
                    }
                    answers
                })
            })
            .collect();
        for version in 2..=8 {
            assert_eq!(server.deploy(&ada, "greeter", greeter(version), &[]).0, 201);
            let back =
                server.post_json("/api/functions/greeter/rollback", Some(&ada), &json!({ "version": version - 1 }));
            assert_eq!(back.status(), 200);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        callers.into_iter().flat_map(|caller| caller.join().unwrap()).collect()
    });
    let failed: Vec<&(u16, Value)> = answers.iter().filter(|(status, _)| *status != 200).collect();
    assert!(failed.is_empty(), "{} of {} calls failed: {failed:?}", failed.len(), answers.len());
}

/// `n` bytes no compressor can shrink (xorshift), so an archive's size is what the test says.
fn incompressible(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

fn archive_with_data(data: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in
        [("main.py", GREETER.replace("VERSION", "1").as_bytes().to_vec()), ("data.bin", data.to_vec())]
    {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, contents.as_slice()).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

/// An upload near `[deploy] max_archive_bytes` deploys (not axum's 2 MB multipart default),
/// received into a file as it arrives; one over it is refused with a 413 naming the limit and the
/// setting, whether its declared length says so or only its bytes do, and leaves no file behind.
#[test]
fn uploads_up_to_the_archive_limit_deploy_and_larger_ones_name_the_setting() {
    let limits = "[deploy]\nmax_archive_bytes = 25000000\nmax_expanded_bytes = 60000000\nmax_entries = 100\n";
    let Some(server) = Server::start_with_config(crate::harness::Backend::Sqlite, limits, &[]) else { return };
    let ada = server.user("ada@example.com");
    let near = archive_with_data(&incompressible(20 << 20, 7));
    assert!(near.len() > 20 << 20, "the archive is {} bytes", near.len());
    let (status, deployed) = server.deploy(&ada, "big", near, &[]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(call(&server, Some(&ada), "big").0, 200);

    // A declared length over the limit is answered before the body is read (the client need not
    // send 26 MB to learn it): written by hand, since a client sending the body sees the close.
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    let head = format!(
        "POST /api/functions/deploy HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {ada}\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: {}\r\n\r\n",
        26 << 20
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    let refused: Value = serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap_or("null")).unwrap();
    assert_eq!(code(&refused), "archive_too_large", "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("25000000 bytes") && message.contains("[deploy] max_archive_bytes"), "{message}");

    // Within the body's allowance (the form's other fields get a little room) but over the limit
    // in its archive part: refused while it is received.
    let over = incompressible(25_000_000 + (256 << 10), 8);
    let (status, refused) = server.deploy(&ada, "over", over, &[]);
    assert_eq!((status, code(&refused)), (413, "archive_too_large"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("[deploy] max_archive_bytes"), "{refused}");
    let artifacts = std::fs::read_dir(server.data_dir.path().join("artifacts")).unwrap();
    let names: Vec<String> =
        artifacts.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().all(|name| !name.starts_with(".upload")), "no partial upload is left: {names:?}");
    assert_eq!(names.len(), 1, "only the deployed archive is kept: {names:?}");
}
