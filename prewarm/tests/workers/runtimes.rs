//! The runtime adapters: handler shapes per runtime, load errors, missing runtimes, Dart.

use std::time::Duration;

use prewarm::{EntryMode, InvocationEvent, Outcome, Runtime};

use crate::fixture::{skip, Fixture};

#[tokio::test]
async fn node_handlers_load_from_commonjs_and_esm() {
    let fixture = Fixture::new();
    fixture
        .prewarm
        .prepare(fixture.node("cjs", "module.exports.handler = (body) => ({ style: 'cjs', body });"))
        .await
        .unwrap();
    let esm = fixture.function(
        "esm",
        Runtime::Node,
        EntryMode::Handler,
        &[
            ("package.json", r#"{"type":"module"}"#),
            (
                "index.js",
                "export async function handler(body, request) { return { style: 'esm', method: request.method }; }",
            ),
        ],
    );
    fixture.prewarm.prepare(esm).await.unwrap();
    assert_eq!(
        fixture.call("cjs@1", r#"{"a":1}"#).await.result.unwrap(),
        serde_json::json!({"style": "cjs", "body": {"a": 1}})
    );
    assert_eq!(
        fixture.call("esm@1", "{}").await.result.unwrap(),
        serde_json::json!({"style": "esm", "method": "POST"})
    );
}

#[tokio::test]
async fn handlers_receive_the_whole_request_when_they_take_two_arguments() {
    let fixture = Fixture::new();
    let source = r#"
import asyncio
async def handler(body, request):
    await asyncio.sleep(0.01)
    return {"body": body, "method": request["method"], "path": request["path"],
            "query": request["query"], "agent": request["headers"].get("user-agent")}
"#;
    fixture.prewarm.prepare(fixture.python("full", source)).await.unwrap();
    let mut event = InvocationEvent { method: "PUT".into(), path: "/items/7".into(), ..Default::default() }
        .with_raw_body(b"plain text");
    event.query.insert("page".into(), "2".into());
    event.headers.insert("user-agent".into(), "curl/8".into());
    let invocation = fixture.call_event("full@1", event).await;
    assert_eq!(
        invocation.result.unwrap(),
        serde_json::json!({"body": "plain text", "method": "PUT", "path": "/items/7", "query": {"page": "2"}, "agent": "curl/8"})
    );
}

#[tokio::test]
async fn a_function_that_fails_to_load_fails_prepare_with_the_reason() {
    let fixture = Fixture::new();
    let error =
        fixture.prewarm.prepare(fixture.python("syntax", "def handler(body)\n    return 1\n")).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains("SyntaxError"), "{message}");
    let error = fixture.prewarm.prepare(fixture.node("nohandler", "exports.other = 1;")).await.unwrap_err();
    assert!(error.to_string().contains("loaded without a callable `handler` (it exports other (number))"), "{error}");
}

#[tokio::test]
async fn a_broken_function_is_not_respawned_on_every_request() {
    let fixture = Fixture::new();
    let mut spec = fixture.python("broken", "raise RuntimeError('config missing')\n");
    spec.limits.min_idle_workers = 0;
    fixture.prewarm.prepare(spec).await.unwrap();
    for _ in 0..20 {
        let invocation = fixture.call("broken@1", "{}").await;
        assert_eq!(invocation.outcome, Outcome::RuntimeUnavailable);
        assert!(invocation.error.unwrap().message.contains("config missing"));
    }
    assert_eq!(fixture.prewarm.stats()[0].spawns, 1, "later calls are answered from the start-up backoff");
}

#[tokio::test]
async fn a_missing_runtime_is_reported_without_spawning() {
    let empty = tempfile::tempdir().unwrap();
    let fixture = Fixture::with(|config| config.runtime_search_path = Some(empty.path().as_os_str().to_owned()));
    let spec = fixture.function("dartfn", Runtime::Dart, EntryMode::Handler, &[("main.dart", "void main() {}\n")]);
    let report = fixture.prewarm.prepare(spec).await.unwrap();
    assert_eq!(report.runtime_unavailable.as_deref(), Some("runtime unavailable: dart not found on PATH"));
    for _ in 0..5 {
        let invocation = tokio::time::timeout(Duration::from_secs(1), fixture.call("dartfn@1", "{}")).await.unwrap();
        assert_eq!(invocation.outcome, Outcome::RuntimeUnavailable);
        assert_eq!(invocation.error.unwrap().message, "runtime unavailable: dart not found on PATH");
    }
    assert_eq!(fixture.prewarm.stats()[0].spawns, 0);
}

#[tokio::test]
async fn a_missing_exec_wrapper_stops_start_up_with_what_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        prewarm::PrewarmConfig::new(dir.path().join("state"), dir.path().join("nowhere/containerpub-worker-exec"));
    let error = prewarm::Prewarm::start(config).unwrap_err();
    assert!(error.to_string().contains("build the containerpub-worker-exec binary"), "{error}");
}

const DART_FUNCTION: &str = r#"
const function = 'function';

@function
Future<Map<String, dynamic>> handler(Map<String, dynamic> body) async {
  print('hello from dart');
  return {'greeting': 'Hello, ${body['name'] ?? 'world'}!'};
}
"#;

#[test]
fn dart_adapter_and_generated_entry_parse_with_tree_sitter_dart() {
    let mut parser = tree_sitter::Parser::new();
    parser.set_language(&tree_sitter_dart::LANGUAGE.into()).unwrap();
    let adapter = include_str!("../../runtimes/dart/containerpub_adapter.dart");
    let entry = include_str!("../../runtimes/dart/entry.dart.template")
        .replace("{{FUNCTION_MAIN_URI}}", "file:///srv/fn/main.dart")
        .replace("{{FUNCTION_NAME}}", "handler")
        .replace("{{ADAPTER_URI}}", "file:///srv/adapters/containerpub_adapter.dart");
    for (name, source) in
        [("containerpub_adapter.dart", adapter), ("entry.dart", entry.as_str()), ("function", DART_FUNCTION)]
    {
        let tree = parser.parse(source, None).unwrap();
        let mut problems = Vec::new();
        collect_errors(tree.root_node(), source, &mut problems);
        assert!(problems.is_empty(), "{name} does not parse cleanly: {problems:?}");
        assert!(tree.root_node().named_child_count() > 0);
    }
}

fn collect_errors(node: tree_sitter::Node, source: &str, problems: &mut Vec<String>) {
    if node.is_error() || node.is_missing() {
        let start = node.start_position();
        problems.push(format!(
            "{}:{}: {}",
            start.row + 1,
            start.column + 1,
            &source[node.byte_range()].chars().take(60).collect::<String>()
        ));
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect_errors(child, source, problems);
    }
}

#[tokio::test]
async fn dart_functions_run_end_to_end_when_the_sdk_is_installed() {
    if prewarm::runtime::find_on_path(std::env::var_os("PATH").as_deref(), "dart").is_none() {
        return skip("dart not on PATH (the Dart adapter end-to-end test needs the Dart SDK)");
    }
    let fixture = Fixture::new();
    let mut spec = fixture.function("dart-hello", Runtime::Dart, EntryMode::Handler, &[("main.dart", DART_FUNCTION)]);
    spec.limits.startup_timeout = Duration::from_secs(120);
    spec.limits.memory_bytes = 512 << 20;
    fixture.prewarm.prepare(spec).await.unwrap();
    let invocation = fixture.call("dart-hello@1", r#"{"name":"Dart"}"#).await;
    assert_eq!(invocation.outcome, Outcome::Ok, "{invocation:?}");
    assert_eq!(invocation.result.unwrap()["greeting"], "Hello, Dart!");
    assert!(invocation.logs.iter().any(|line| line.text == "hello from dart"));
}

/// The Dart VM's `File::Open` (runtime/bin/file_linux.cc) seeks to the end for every append
/// mode and fails the open when the seek fails. This replays its system calls on a real pipe:
/// the append open the adapter once used cannot succeed, the `writeOnly` one it uses does.
#[test]
fn the_dart_adapter_opens_its_reply_pipe_the_way_the_vm_can() {
    use std::os::fd::AsRawFd;
    let (_read_end, write_end) = nix::unistd::pipe().unwrap();
    let path = format!("/dev/fd/{}", write_end.as_raw_fd());
    let open = |flags: nix::fcntl::OFlag| {
        nix::fcntl::open(
            path.as_str(),
            flags | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::from_bits_truncate(0o666),
        )
        .unwrap()
    };
    // FileMode.writeOnlyAppend → kWriteOnly: O_WRONLY|O_CREAT, then lseek(SEEK_END).
    let append = open(nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CREAT);
    let seek = nix::unistd::lseek(&append, 0, nix::unistd::Whence::SeekEnd);
    assert_eq!(seek, Err(nix::errno::Errno::ESPIPE), "an append open of a pipe fails in the VM");
    // FileMode.writeOnly → kWriteOnlyTruncate: O_WRONLY|O_CREAT|O_TRUNC, no seek; writes arrive.
    let write_only = open(nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_TRUNC);
    assert_eq!(nix::unistd::write(&write_only, b"frame").unwrap(), 5);

    let adapter = include_str!("../../runtimes/dart/containerpub_adapter.dart");
    let opens: Vec<&str> = adapter.lines().filter(|line| line.contains(".open(mode:")).collect();
    assert_eq!(opens.len(), 2, "{opens:?}");
    for line in opens {
        assert!(
            line.contains("FileMode.read)") || line.contains("FileMode.writeOnly)"),
            "the adapter opens a protocol pipe in a mode the VM seeks in: {line}"
        );
    }
}
