//! `dart_cloud` against the real `containerpub` server (SQLite, a temp data dir, a free port),
//! with its own temporary config directory.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

mod terminal;

const SECRET: &str = "cli-test-secret-0123456789abcdef-0123";

struct Server {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_dart_cloud")).with_file_name(name);
    assert!(path.exists(), "{} is missing: build the workspace (`cargo build`; scripts/test does)", path.display());
    path
}

/// Starts the real server on a free port. A port can be taken between asking for it and binding
/// it (tests run in parallel), so readiness is our server's `/healthz` answering, and a server
/// that exits (port taken) is started again on another port.
fn start_server() -> Server {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("c.toml"), "[functions]\nmax_concurrent = 1\nmax_queue_length = 1\n").unwrap();
    for _attempt in 0..3 {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(data.path().join(format!("server-{port}.log"))).unwrap();
        let mut child = Command::new(binary("containerpub"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
            .arg(data.path())
            .arg("--config")
            .arg(data.path().join("c.toml"))
            .env("JWT_SECRET", SECRET)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let health =
                client.get(format!("{url}/healthz")).send().ok().and_then(|answer| answer.json::<Value>().ok());
            if health.is_some_and(|health| health["status"] == "ok") {
                return Server { child, url, _data: data };
            }
            assert!(started.elapsed() < Duration::from_secs(60), "the server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let logs: Vec<String> = std::fs::read_dir(data.path())
        .unwrap()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap_or_default())
        .collect();
    panic!("the server exited three times:\n{}", logs.join("\n---\n"));
}

/// Runs `dart_cloud` with `home` as its config directory; stdin gets `input`.
fn cli(home: &Path, url: &str, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(binary("dart_cloud"))
        .args(args)
        .env("DART_CLOUD_URL", url)
        .env_remove("DART_CLOUD_TOKEN")
        .env("XDG_CONFIG_HOME", home)
        .env("HOME", home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn ok(output: Output) -> String {
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

fn failed(output: Output) -> String {
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "stdout: {stdout}\nstderr: {stderr}");
    stderr
}

fn example(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative).display().to_string()
}

#[test]
fn usage_and_unreachable_server() {
    let home = tempfile::tempdir().unwrap();
    let usage = cli(home.path(), "http://127.0.0.1:9", &["deploy", "--no-such-flag"], "");
    assert_eq!(usage.status.code(), Some(2));
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let stderr = failed(cli(home.path(), &url, &["login", "--email", "a@example.com"], "password\n"));
    assert!(stderr.contains(&format!("cannot reach {url}: is `containerpub serve` running?")), "{stderr}");
    let stderr = failed(cli(home.path(), &url, &["list"], ""));
    assert!(stderr.contains("not logged in: run `dart_cloud login`"), "{stderr}");
    let completions = ok(cli(home.path(), &url, &["completions", "bash"], ""));
    assert!(completions.contains("dart_cloud") && completions.contains("deploy"));
}

#[test]
fn the_whole_workflow() {
    let server = start_server();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cli(home.path(), &server.url, args, "");
    let register = reqwest::blocking::Client::new()
        .post(format!("{}/api/auth/register", server.url))
        .json(&json!({ "email": "ada@example.com", "password": "correct horse battery" }))
        .send()
        .unwrap();
    assert_eq!(register.status(), 201);

    // Login: a wrong password is refused; the right one is saved, private to the user.
    let stderr = failed(cli(home.path(), &server.url, &["login", "--email", "ada@example.com"], "wrong password\n"));
    assert!(stderr.contains("wrong email or password"), "{stderr}");
    ok(cli(home.path(), &server.url, &["login", "--email", "ada@example.com"], "correct horse battery\n"));
    let saved = home.path().join("dart_cloud/credentials.json");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&saved).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o600);
    let me: Value = serde_json::from_str(&ok(run(&["whoami"]))).unwrap();
    assert_eq!(me["email"], "ada@example.com", "stdout is not a terminal: JSON lines");

    // Deploy the Python example, call it, read its logs.
    let dir = example("examples/python/simple-function");
    let deployed: Value = serde_json::from_str(&ok(run(&[
        "deploy",
        &dir,
        "--name",
        "hello",
        "--env",
        "GREETING=hi",
        "--timeout",
        "2000",
    ])))
    .unwrap();
    assert_eq!(deployed["url"], format!("{}/fn/hello", server.url));
    assert_eq!(deployed["version"], 1);
    let answer = ok(run(&["invoke", "hello", "--data", r#"{"name":"Ada"}"#]));
    assert_eq!(answer.trim(), r#"{"message":"Hello, Ada!"}"#);
    let with_headers = ok(run(&["invoke", "hello", "-d", "{}", "-i"]));
    assert!(
        with_headers.starts_with("HTTP/1.1 200 OK") && with_headers.contains("x-invocation-id: inv_"),
        "{with_headers}"
    );
    let stderr = failed(run(&["invoke", "hello", "--data", "{not json"]));
    assert!(stderr.contains("is not JSON"), "{stderr}");
    std::thread::sleep(Duration::from_millis(300));
    let logs = ok(run(&["logs", "hello", "-n", "5", "--since", "10m"]));
    let line: Value = serde_json::from_str(logs.lines().last().unwrap()).unwrap();
    assert_eq!(line["message"], "greeting world");

    // Following: a new call's line arrives while `logs -f` runs.
    let mut follower = Command::new(binary("dart_cloud"))
        .args(["logs", "hello", "-f", "-o", "table", "--no-color"])
        .env("DART_CLOUD_URL", &server.url)
        .env("XDG_CONFIG_HOME", home.path())
        .env("HOME", home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(follower.stdout.take().unwrap());
    std::thread::sleep(Duration::from_millis(500));
    ok(run(&["invoke", "hello", "--data", r#"{"name":"Followed"}"#]));
    let mut seen = String::new();
    while !seen.contains("greeting Followed") {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "logs -f ended: {seen}");
        seen.push_str(&line);
    }
    assert!(seen.contains(" v1 greeting Followed"), "{seen}");
    follower.kill().unwrap();
    follower.wait().unwrap();

    // A function's own error answer is printed as it is (not taken for a platform error).
    ok(run(&["deploy", &example("examples/python/envelope-function"), "--name", "http"]));
    let own_error = run(&["invoke", "http", "--data", "[1]"]);
    assert_eq!(text(&own_error).0.trim(), r#"{"error":"send a JSON object"}"#);
    assert!(failed(own_error).contains("the function answered 400"));

    // A rejected package: the findings, compiler style, and exit 1.
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(
        bad.path().join("main.py"),
        "import subprocess\n\ndef handler(body):\n    return subprocess.run(['id'])\n",
    )
    .unwrap();
    let stderr = failed(run(&["deploy", bad.path().to_str().unwrap(), "--name", "bad"]));
    assert!(stderr.contains("main.py:1:"), "{stderr}");
    assert!(stderr.contains("the analyzer rejected the package"), "{stderr}");

    // --entry names the file and the function; a deploy that lands in oneshot mode warns with
    // the reason and the two ways out before any call fails.
    let shaped = tempfile::tempdir().unwrap();
    std::fs::create_dir(shaped.path().join("src")).unwrap();
    std::fs::write(shaped.path().join("src/app.py"), "def handle(body):\n    return {'handled': body}\n").unwrap();
    std::fs::write(shaped.path().join("script.py"), "import json\nprint(json.dumps({'script': True}))\n").unwrap();
    let shaped_dir = shaped.path().to_str().unwrap();
    let deployed: Value =
        serde_json::from_str(&ok(run(&["deploy", shaped_dir, "--name", "shaped", "--entry", "src/app.py:handle"])))
            .unwrap();
    assert_eq!(deployed["entry"]["reason"], "loading src/app.py found `handle`, a function: served warm");
    assert_eq!(text(&run(&["invoke", "shaped", "--data", "{\"a\":1}"])).0.trim(), r#"{"handled":{"a":1}}"#);
    let info: Value = serde_json::from_str(&ok(run(&["info", "shaped"]))).unwrap();
    assert_eq!(
        (info["entry"]["file"].as_str(), info["entry"]["function"].as_str()),
        (Some("src/app.py"), Some("handle"))
    );
    let script = run(&["deploy", shaped_dir, "--name", "script", "--entry", "script.py"]);
    let (_, stderr) = text(&script);
    ok(script);
    assert!(stderr.contains("warning: script.py runs in main mode (script.py never mentions `handler`"), "{stderr}");
    assert!(stderr.contains("print(json.dumps(result))"), "{stderr}");
    let refused = run(&["deploy", shaped_dir, "--name", "shaped", "--entry", "../x.py"]);
    assert_eq!(refused.status.code(), Some(2), "{:?}", text(&refused));

    // Versions, rollback, list, info, delete; --json output field by field. Version 2 runs with
    // no network; rolling back to version 1 brings back the server's default policy.
    ok(run(&["deploy", &dir, "--name", "hello", "--network", "none"]));
    let offline: Value = serde_json::from_str(&ok(run(&["info", "hello", "--json"]))).unwrap();
    assert_eq!(offline["network"], "none", "{offline}");
    let versions: Vec<Value> =
        ok(run(&["versions", "hello", "--json"])).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(versions.len(), 2);
    assert_eq!((versions[0]["version"].as_i64(), versions[0]["active"].as_bool()), (Some(2), Some(true)));
    assert_eq!((versions[1]["version"].as_i64(), versions[1]["active"].as_bool()), (Some(1), Some(false)));
    assert_eq!(versions[1]["settings"]["env"], json!({ "GREETING": "hi" }));
    assert_eq!(versions[1]["settings"]["timeout_ms"], 2000);
    assert_eq!(versions[0]["settings"]["network"], "none");
    assert_eq!(
        (versions[0]["runtime"].as_str(), versions[0]["entry_mode"].as_str()),
        (Some("python"), Some("handler"))
    );
    assert_eq!(versions[0]["sha256"].as_str().map(str::len), Some(12));
    assert_eq!(versions[0]["analysis"]["verdict"], "accept");
    let rolled: Value = serde_json::from_str(&ok(run(&["rollback", "hello", "1", "--json"]))).unwrap();
    assert_eq!(rolled, json!({ "name": "hello", "active_version": 1 }));
    let info: Value = serde_json::from_str(&ok(run(&["info", "hello", "--json"]))).unwrap();
    assert_eq!(info["active_version"], 1);
    assert_eq!(info["network"], "egress", "{info}");
    assert_eq!(
        (info["name"].as_str(), info["public"].as_bool(), info["url"].as_str()),
        (Some("hello"), Some(false), Some("/fn/hello"))
    );
    assert!(info["id"].as_str().unwrap().starts_with("fn_"));
    assert_eq!(info["pool"]["idle"].as_u64().map(|idle| idle >= 1), Some(true), "{info}");
    let listed: Vec<Value> = ok(run(&["list", "--json"])).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let hello = listed.iter().find(|f| f["name"] == "hello").unwrap();
    assert_eq!((hello["active_version"].as_i64(), hello["runtime"].as_str()), (Some(1), Some("python")));
    assert_eq!(ok(run(&["keys", "list", "--json"])), "", "no keys yet");
    let table = ok(run(&["list", "-o", "table", "--no-color"]));
    assert!(table.starts_with("NAME") && table.contains("hello"), "{table}");

    // Secrets: the value from standard input, listed by name only, removed.
    ok(cli(home.path(), &server.url, &["secrets", "set", "hello", "SERVICE_KEY"], "value-from-stdin-123\n"));
    let listed = ok(run(&["secrets", "list", "hello"]));
    assert!(listed.contains("\"name\":\"SERVICE_KEY\"") && !listed.contains("value-from-stdin-123"), "{listed}");
    let empty = failed(cli(home.path(), &server.url, &["secrets", "set", "hello", "EMPTY"], ""));
    assert!(empty.contains("no value on standard input"), "{empty}");
    ok(run(&["secrets", "unset", "hello", "SERVICE_KEY"]));
    assert!(!ok(run(&["secrets", "list", "hello"])).contains("SERVICE_KEY"));

    // Keys: created, usable as a token, revoked.
    let key: Value = serde_json::from_str(&ok(run(&["keys", "create", "ci", "--scope", "deploy"]))).unwrap();
    let key_text = key["key"].as_str().unwrap();
    let as_key = ok(cli(home.path(), &server.url, &["whoami", "--token", key_text], ""));
    assert!(as_key.contains("ada@example.com"));
    ok(run(&["keys", "revoke", key["id"].as_str().unwrap()]));
    let stderr = failed(cli(home.path(), &server.url, &["whoami", "--token", key_text], ""));
    assert!(stderr.contains("revoked"), "{stderr}");

    // An expired token says to log in again.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({ "sub": me["id"], "iss": "containerpub", "aud": "containerpub-api", "exp": now - 600, "iat": now - 700 });
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let stderr = failed(cli(home.path(), &server.url, &["list", "--token", &expired], ""));
    assert!(stderr.contains("your login has expired: run `dart_cloud login`"), "{stderr}");

    // Busy: one slot and one queue place on this server; the third caller is told to retry.
    let slow = tempfile::tempdir().unwrap();
    std::fs::write(slow.path().join("main.py"), "import time\ndef handler(body):\n    time.sleep(1)\n    return 1\n")
        .unwrap();
    ok(run(&["deploy", slow.path().to_str().unwrap(), "--name", "slow"]));
    let outcomes: Vec<(i32, String)> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..3)
            .map(|i| {
                let run = &run;
                scope.spawn(move || {
                    std::thread::sleep(Duration::from_millis(150 * i));
                    let output = run(&["invoke", "slow", "-d", "{}"]);
                    (output.status.code().unwrap(), text(&output).1)
                })
            })
            .collect();
        calls.into_iter().map(|call| call.join().unwrap()).collect()
    });
    // The wait comes from the drain rate; with no call finished yet it is the function's timeout.
    let told_to_retry = |stderr: &str| {
        stderr.split("retry in ").nth(1).and_then(|rest| rest.split(' ').next()).and_then(|n| n.parse::<u64>().ok())
    };
    assert!(
        outcomes.iter().any(|(code, stderr)| *code == 1 && told_to_retry(stderr).is_some_and(|seconds| seconds >= 1)),
        "{outcomes:?}"
    );

    // Delete needs --yes off a terminal.
    let stderr = failed(run(&["delete", "hello"]));
    assert!(stderr.contains("--yes"), "{stderr}");
    ok(run(&["delete", "hello", "--yes"]));
    let stderr = failed(run(&["info", "hello"]));
    assert!(stderr.contains("404") && stderr.contains("you have no function"), "{stderr}");

    // init → deploy → invoke: the Dart skeleton deploys and answers where the server has Dart;
    // elsewhere the deploy fails (exit 1) saying what the server lacks.
    let work = tempfile::tempdir().unwrap();
    let skeleton = work.path().join("from-init");
    ok(run(&["init", skeleton.to_str().unwrap()]));
    let deployed = run(&["deploy", skeleton.to_str().unwrap()]);
    if deployed.status.code() == Some(0) {
        let deployed: Value = serde_json::from_str(&text(&deployed).0).unwrap();
        assert_eq!((deployed["name"].as_str(), deployed["runtime"].as_str()), (Some("from-init"), Some("dart")));
        let answer = run(&["invoke", "from-init", "-d", r#"{"name":"Ada"}"#]);
        assert_eq!(ok(answer).trim(), r#"{"message":"Hello, Ada!"}"#);
    } else {
        let _ =
            writeln!(std::io::stderr(), "skipped: dart not on PATH (the init skeleton's deploy is refused instead)");
        let stderr = failed(deployed);
        assert!(stderr.contains("no dart runtime") && stderr.contains("runtime_unavailable"), "{stderr}");
    }
    ok(run(&["logout"]));
    assert!(failed(run(&["whoami"])).contains("not logged in"));
}

#[test]
fn init_makes_a_function_the_analyzer_accepts() {
    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("my-func");
    let output = Command::new(binary("dart_cloud"))
        .args(["init"])
        .arg(&target)
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    for file in ["pubspec.yaml", "main.dart", "analysis_options.yaml", "test/main_test.dart"] {
        assert!(target.join(file).exists(), "{file}");
    }
    assert!(std::fs::read_to_string(target.join("pubspec.yaml")).unwrap().starts_with("name: my_func\n"));
    let report = analyzer::analyze(&target, &analyzer::Options::default()).unwrap();
    assert_eq!(report.verdict, analyzer::Verdict::Accept, "{:#?}", report.findings);
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let again = Command::new(binary("dart_cloud"))
        .args(["init"])
        .arg(&target)
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1), "init never overwrites");
}

/// An HTTP server that answers `404` to control-plane requests and `{}` to function calls, and
/// records the head of every request it gets.
fn recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut stream = stream;
            'requests: loop {
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break 'requests; // the client closed this connection
                    }
                    if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = value.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0; length];
                std::io::Read::read_exact(&mut reader, &mut body).unwrap();
                let answer = if head.starts_with("GET /api/functions/") {
                    "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                } else {
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
                };
                record.lock().unwrap().push(head);
                stream.write_all(answer.as_bytes()).unwrap();
            }
        }
    });
    (url, seen)
}

#[test]
fn invoking_a_function_you_do_not_own_sends_no_login() {
    let (url, seen) = recording_server();
    let home = tempfile::tempdir().unwrap();
    // A login token for this server (the recording server never checks it).
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJjb250YWluZXJwdWIifQ.c2lnbmF0dXJl";
    let with_token = |args: &[&str]| {
        let mut child = Command::new(binary("dart_cloud"))
            .args(args)
            .env("DART_CLOUD_URL", &url)
            .env("DART_CLOUD_TOKEN", token)
            .env("XDG_CONFIG_HOME", home.path())
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take();
        child.wait_with_output().unwrap()
    };
    ok(with_token(&["invoke", "someone-elses", "--data", "{}"]));
    let heads = seen.lock().unwrap().clone();
    let call = heads.iter().find(|head| head.starts_with("POST /fn/someone-elses")).expect("the function was called");
    assert!(
        !call.to_ascii_lowercase().contains("authorization"),
        "the login went to a function it does not own: {call}"
    );
    let check =
        heads.iter().find(|head| head.starts_with("GET /api/functions/someone-elses")).expect("ownership asked");
    assert!(check.to_ascii_lowercase().contains("authorization: bearer"), "{check}");

    // Asked for explicitly, it is sent.
    ok(with_token(&["invoke", "someone-elses", "--data", "{}", "--auth"]));
    let heads = seen.lock().unwrap().clone();
    let last = heads.iter().rev().find(|head| head.starts_with("POST /fn/someone-elses")).unwrap();
    assert!(last.to_ascii_lowercase().contains("authorization: bearer"), "{last}");
}

#[test]
fn administrators_invite_create_and_disable_accounts() {
    let server = start_server();
    let admin_home = tempfile::tempdir().unwrap();
    let admin = |args: &[&str], input: &str| cli(admin_home.path(), &server.url, args, input);
    let (_, stderr) = text(&admin(&["register", "--email", "root@example.com"], "correct horse battery\n"));
    assert!(stderr.contains("it is the administrator"), "{stderr}");

    // Registration is then closed, unless invited.
    let guest_home = tempfile::tempdir().unwrap();
    let guest = |args: &[&str], input: &str| cli(guest_home.path(), &server.url, args, input);
    let refused = failed(guest(&["register", "--email", "guest@example.com"], "correct horse battery\n"));
    assert!(refused.contains("registration is closed"), "{refused}");
    let invite: Value = serde_json::from_str(&ok(admin(&["admin", "invite", "--expires-in", "1h"], ""))).unwrap();
    let code = invite["code"].as_str().unwrap();
    ok(guest(&["register", "--email", "guest@example.com", "--invite", code], "correct horse battery\n"));
    let again = failed(cli(
        tempfile::tempdir().unwrap().path(),
        &server.url,
        &["register", "--email", "x@example.com", "--invite", code],
        "correct horse battery\n",
    ));
    assert!(again.contains("invitation is unknown, used or expired"), "{again}");

    // Accounts made by an administrator, listed, disabled.
    let made: Value = serde_json::from_str(&ok(admin(&["admin", "users", "create", "made@example.com"], ""))).unwrap();
    assert!(made["password"].as_str().is_some_and(|password| password.len() >= 16), "{made}");
    let users: Vec<Value> =
        ok(admin(&["admin", "users", "list"], "")).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(users.len(), 3, "{users:?}");
    let guest_id =
        users.iter().find(|user| user["email"] == "guest@example.com").unwrap()["id"].as_str().unwrap().to_string();
    ok(guest(&["whoami"], ""));
    ok(admin(&["admin", "users", "disable", &guest_id], ""));
    let cut_off = failed(guest(&["whoami"], ""));
    assert!(cut_off.contains("this account is disabled"), "{cut_off}");
    let not_admin = failed(cli(guest_home.path(), &server.url, &["admin", "users", "list"], ""));
    assert!(not_admin.contains("disabled"), "{not_admin}");
    ok(admin(&["admin", "users", "enable", &guest_id], ""));
    let denied = failed(guest(&["admin", "users", "list"], ""));
    assert!(denied.contains("admin scope"), "{denied}");

    // The administrator calls the guest's public function: its login never reaches the guest's code.
    let echo = tempfile::tempdir().unwrap();
    std::fs::write(
        echo.path().join("index.js"),
        "exports.handler = async (body, request) => ({ headers: request.headers });\n",
    )
    .unwrap();
    ok(guest(&["deploy", echo.path().to_str().unwrap(), "--name", "echo-headers", "--public"], ""));
    let seen = ok(admin(&["invoke", "echo-headers", "--data", "{}"], ""));
    assert!(!seen.to_ascii_lowercase().contains("authorization"), "{seen}");
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(admin_home.path().join("dart_cloud/credentials.json")).unwrap())
            .unwrap();
    let token = saved["servers"][&server.url]["token"].as_str().expect("the admin's saved login");
    assert!(!seen.contains(token), "{seen}");
    let forced = ok(admin(&["invoke", "echo-headers", "--data", "{}", "--auth"], ""));
    assert!(!forced.to_ascii_lowercase().contains("authorization"), "the gateway drops it even when sent: {forced}");

    // Scoped keys.
    let key: Value = serde_json::from_str(&ok(guest(
        &["keys", "create", "ci", "--scope", "deploy", "--function", "alpha", "--expires-in", "1d"],
        "",
    )))
    .unwrap();
    assert_eq!((key["scope"].as_str(), key["functions"][0].as_str()), (Some("deploy"), Some("alpha")), "{key}");
    assert!(key["expires_at"].is_u64() || key["expires_at"].is_i64(), "{key}");
    let default: Value = serde_json::from_str(&ok(guest(&["keys", "create", "caller"], ""))).unwrap();
    assert_eq!(default["scope"], "invoke");
    let escalation = failed(guest(&["keys", "create", "root", "--scope", "admin"], ""));
    assert!(escalation.contains("admin scope"), "{escalation}");
}

#[test]
fn deploy_checks_the_login_first_and_takes_files_durations_and_a_dry_run() {
    let server = start_server();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str], input: &str| cli(home.path(), &server.url, args, input);
    let package = tempfile::tempdir().unwrap();
    std::fs::write(
        package.path().join("main.py"),
        "import os\ndef handler(body):\n    return {'greeting': os.environ.get('GREETING')}\n",
    )
    .unwrap();
    let dir = package.path().to_str().unwrap();

    // Not logged in: said before any analysis or upload; a dry run needs no login.
    let refused = failed(run(&["deploy", dir, "--name", "shaped"], ""));
    assert!(refused.contains("not logged in") && !refused.contains("Analyzer"), "{refused}");
    let listed = ok(run(&["deploy", dir, "--name", "shaped", "--dry-run"], ""));
    assert_eq!(listed.trim(), "main.py");

    ok(run(&["register", "--email", "ada@example.com"], "correct horse battery\n"));
    let env_file = package.path().join("prod.env");
    std::fs::write(&env_file, "# the production values\nexport GREETING=\"hello from a file\"\n\nLEVEL=3\n").unwrap();
    let deployed: Value = serde_json::from_str(&ok(run(
        &[
            "deploy",
            dir,
            "--name",
            "shaped",
            "--env-file",
            env_file.to_str().unwrap(),
            "--timeout",
            "2s",
            "--runtime",
            "python",
            "--max-concurrency",
            "1",
        ],
        "",
    )))
    .unwrap();
    assert_eq!(deployed["runtime"], "python", "{deployed}");
    let versions: Vec<Value> =
        ok(run(&["versions", "shaped"], "")).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let settings = &versions[0]["settings"];
    assert_eq!(settings["timeout_ms"], 2000, "{settings}");
    assert_eq!(settings["max_concurrency"], 1, "{settings}");
    assert_eq!(settings["env"], json!({ "GREETING": "hello from a file", "LEVEL": "3" }), "{settings}");
    assert_eq!(ok(run(&["invoke", "shaped", "--data", "{}"], "")).trim(), r#"{"greeting":"hello from a file"}"#);
    let bad = failed(run(&["deploy", dir, "--name", "shaped", "--timeout", "5 seconds"], ""));
    assert!(bad.contains("use 500ms, 5s or 2m"), "{bad}");

    // A function error: its type and message; the trace with -v; -i keeps the exit status.
    let failing = tempfile::tempdir().unwrap();
    std::fs::write(failing.path().join("main.py"), "def handler(body):\n    raise KeyError('order')\n").unwrap();
    ok(run(&["deploy", failing.path().to_str().unwrap(), "--name", "failing"], ""));
    let plain = failed(run(&["invoke", "failing", "--data", "{}"], ""));
    assert!(plain.contains("the function raised KeyError: 'order'") && !plain.contains("Traceback"), "{plain}");
    let verbose = failed(run(&["invoke", "failing", "--data", "{}", "-v"], ""));
    assert!(verbose.contains("Traceback") && verbose.contains("File \"main.py\", line 2"), "{verbose}");
    let (stdout, _) = text(&run(&["invoke", "failing", "--data", "{}", "-i"], ""));
    assert!(stdout.starts_with("HTTP/1.1 500"), "{stdout}");
    assert_eq!(run(&["invoke", "failing", "--data", "{}", "-i"], "").status.code(), Some(1));
}

#[test]
fn the_seeds_command_forms_work() {
    let server = start_server();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| cli(home.path(), &server.url, args, "");
    ok(cli(home.path(), &server.url, &["register", "--email", "ada@example.com"], "correct horse battery\n"));
    let dir = example("examples/python/envelope-function");

    // `deploy NAME PATH`, as the seed documents it, beside `deploy PATH --name NAME`.
    let deployed: Value = serde_json::from_str(&ok(run(&["deploy", "my-function", &dir]))).unwrap();
    assert_eq!((&deployed["name"], &deployed["version"]), (&json!("my-function"), &json!(1)), "{deployed}");
    let again: Value =
        serde_json::from_str(&ok(run(&["deploy", "my-function", &dir, "--name", "my-function"]))).unwrap();
    assert_eq!(again["version"], 2, "the same name twice is no conflict: {again}");
    let two_names = failed(run(&["deploy", "my-function", &dir, "--name", "other"]));
    assert!(two_names.contains("two names") && two_names.contains("give one"), "{two_names}");
    let not_a_directory = failed(run(&["deploy", "my-function", "./no/such/dir"]));
    assert!(not_a_directory.contains("deploy NAME PATH"), "{not_a_directory}");
    assert_eq!(run(&["deploy", "a", "b", "c"]).status.code(), Some(2), "three words are a usage error");

    // `invoke <function-id> --body '…'`: the id (`list` shows it) works like the name, and
    // `--body` is `--data`.
    let id = deployed["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("fn_"), "{deployed}");
    let listed = ok(run(&["list"]));
    assert!(listed.contains(&id), "{listed}");
    let answer = ok(run(&["invoke", &id, "--body", r#"{"action": "list"}"#]));
    assert_eq!(answer.trim(), r#"{"received": {"action": "list"}}"#, "the Python example's json.dumps");
    let by_name = ok(run(&["invoke", "my-function", "--body", r#"{"action": "list"}"#]));
    assert_eq!(by_name, answer);
    let conflict = run(&["invoke", &id, "--body", "{}", "--data", "{}"]);
    assert_eq!(conflict.status.code(), Some(2), "--body and --data are one option");

    // The seed's `--query '{"param": "value"}'` beside `--query KEY=VALUE`.
    let seed_query = ok(run(&["invoke", &id, "-X", "GET", "--query", r#"{"name": "Ada"}"#]));
    assert!(seed_query.starts_with("Hello, Ada!"), "{seed_query}");
    let pairs = ok(run(&["invoke", &id, "-X", "GET", "--query", "name=Bo"]));
    assert!(pairs.starts_with("Hello, Bo!"), "{pairs}");
    let bad = failed(run(&["invoke", &id, "--query", r#"{"name": ["a"]}"#]));
    assert!(bad.contains("is not a string, number or boolean"), "{bad}");

    // The id works for the other per-function commands too.
    let info: Value = serde_json::from_str(&ok(run(&["info", &id]))).unwrap();
    assert_eq!(info["name"], "my-function");
    ok(run(&["logs", &id, "-n", "1"]));
    ok(run(&["delete", &id, "--yes"]));
    let gone = failed(run(&["invoke", "my-function", "--body", "{}"]));
    assert!(gone.contains("not_found") || gone.contains("no function"), "{gone}");
}

#[test]
fn a_template_beside_the_code_names_each_function_its_entry_shape_and_environment() {
    let server = start_server();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str], input: &str| cli(home.path(), &server.url, args, input);
    ok(run(&["register", "--email", "ada@example.com"], "correct horse battery\n"));
    let project = tempfile::tempdir().unwrap();
    let template = "AWSTemplateFormatVersion: '2010-09-09'\nTransform: AWS::Serverless-2016-10-31\nGlobals:\n  Function:\n    Environment:\n      Variables:\n        STAGE: prod\nResources:\n  HelloFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.hello\n      Runtime: nodejs20.x\n      Environment:\n        Variables:\n          TABLE: !Ref Table\n      Events:\n        Api:\n          Type: Api\n  ByeFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: src/\n      Handler: app.bye\n      Runtime: nodejs20.x\n";
    std::fs::create_dir(project.path().join("src")).unwrap();
    std::fs::write(project.path().join("template.yaml"), template).unwrap();
    std::fs::write(
        project.path().join("src/app.js"),
        "exports.hello = async (event) => ({ statusCode: 200, body: `${event.httpMethod} ${process.env.STAGE} ${process.env.TABLE}` });\nexports.bye = async () => ({ statusCode: 200, body: 'bye' });\n",
    )
    .unwrap();
    // One command deploys both, each under the template's name, with its shape and environment.
    let (stdout, stderr) = text(&run(&["deploy", project.path().to_str().unwrap(), "--public"], ""));
    assert!(stderr.contains("2 functions named beside the code"), "{stderr}");
    assert!(stderr.contains("environment from template.yaml (HelloFunction): STAGE"), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "one URL each: {stdout}");
    let info: Value = serde_json::from_str(&ok(run(&["info", "hello-function"], ""))).unwrap();
    assert_eq!(info["entry"]["shape"], "lambda-v1", "{info}");
    assert_eq!(info["entry"]["function"], "hello", "{info}");
    let hello = ok(run(&["invoke", "hello-function", "-X", "GET"], ""));
    assert_eq!(hello.trim(), "GET prod undefined", "a !Ref is not a value here");
    assert_eq!(ok(run(&["invoke", "bye-function"], "")).trim(), "bye");
}
