//! Settling a Node or Python entry by loading it: every common handler shape is served warm,
//! a script runs one process per call, and a broken module fails prepare.

use prewarm::{EntryMode, FunctionSpec, Outcome, Runtime};

use crate::fixture::Fixture;

/// A spec whose mode `prepare` settles by loading, with `files` in the function's directory.
fn settled(fixture: &Fixture, name: &str, runtime: Runtime, entry: &str, files: &[(&str, &str)]) -> FunctionSpec {
    let mut spec = fixture.function(name, runtime, EntryMode::Handler, files);
    spec.entry.file = entry.into();
    spec.entry.settle_by_loading = true;
    spec
}

/// (name, runtime, entry file, the package's files)
type Shape = (&'static str, Runtime, &'static str, &'static [(&'static str, &'static str)]);

const WARM_SHAPES: [Shape; 10] = [
    ("cjs-arrow", Runtime::Node, "index.js", &[("index.js", "module.exports = async (event) => ({ ok: true, event });")]),
    (
        "cjs-named-main",
        Runtime::Node,
        "index.js",
        &[("index.js", "async function main(e) { return { ok: true, event: e }; }\nmodule.exports = main;")],
    ),
    (
        "esm-default",
        Runtime::Node,
        "index.js",
        &[
            ("package.json", r#"{"type":"module"}"#),
            ("index.js", "export default async function (body) { return { ok: true, event: body }; }"),
        ],
    ),
    (
        "mjs-handler",
        Runtime::Node,
        "index.mjs",
        &[("index.mjs", "export async function handler(body) { return { ok: true, event: body }; }")],
    ),
    (
        "cjs-file",
        Runtime::Node,
        "index.cjs",
        &[("index.cjs", "exports.handler = (body) => ({ ok: true, event: body });")],
    ),
    (
        "cjs-object",
        Runtime::Node,
        "index.js",
        &[("index.js", "const handler = (body) => ({ ok: true, event: body });\nmodule.exports = { handler };")],
    ),
    ("py-lambda", Runtime::Python, "main.py", &[("main.py", "handler = lambda body: {'ok': True, 'event': body}\n")]),
    (
        "py-async",
        Runtime::Python,
        "main.py",
        &[("main.py", "async def handler(body):\n    return {'ok': True, 'event': body}\n")],
    ),
    (
        "py-callable",
        Runtime::Python,
        "main.py",
        &[(
            "main.py",
            "class Greeter:\n    def __call__(self, body):\n        return {'ok': True, 'event': body}\nhandler = Greeter()\n",
        )],
    ),
    (
        "py-nested",
        Runtime::Python,
        "src/app.py",
        &[("src/app.py", "from src.util import answer\ndef handler(body):\n    return {'ok': answer(), 'event': body}\n"), ("src/util.py", "def answer():\n    return True\n")],
    ),
];

#[tokio::test]
async fn every_common_handler_shape_is_served_warm_from_one_spawn() {
    let fixture = Fixture::new();
    for (name, runtime, entry, files) in WARM_SHAPES {
        let report = fixture.prewarm.prepare(settled(&fixture, name, runtime, entry, files)).await.unwrap();
        assert_eq!(report.entry_mode, EntryMode::Handler, "{name}: {}", report.entry_reason);
        assert!(report.entry_reason.starts_with(&format!("loading {entry} found")), "{name}: {}", report.entry_reason);
        for call in 0..3 {
            let invocation = fixture.call(&format!("{name}@1"), r#"{"n":1}"#).await;
            assert_eq!(invocation.outcome, Outcome::Ok, "{name}: {invocation:?}");
            assert_eq!(
                invocation.result.clone().unwrap(),
                serde_json::json!({"ok": true, "event": {"n": 1}}),
                "{name}"
            );
            assert!(!invocation.cold, "{name}: call {call} was cold");
        }
        let stats = fixture.prewarm.stats().into_iter().find(|stats| stats.key == format!("{name}@1")).unwrap();
        assert_eq!(stats.spawns, 1, "{name}: the worker that settled the mode serves the calls");
    }
}

#[tokio::test]
async fn what_loading_found_is_named_in_the_reason() {
    let fixture = Fixture::new();
    let cases: [(&str, Runtime, &str, &str, &str); 4] = [
        (
            "why-cjs",
            Runtime::Node,
            "index.js",
            "module.exports = async () => 1;",
            "`module.exports`, an async function",
        ),
        ("why-exports", Runtime::Node, "index.js", "exports.handler = () => 1;", "`exports.handler`, a function"),
        ("why-lambda", Runtime::Python, "main.py", "handler = lambda body: 1\n", "`handler`, a lambda"),
        (
            "why-object",
            Runtime::Python,
            "main.py",
            "class H:\n    def __call__(self, b): return 1\nhandler = H()\n",
            "`handler`, a callable H",
        ),
    ];
    for (name, runtime, entry, source, found) in cases {
        let report =
            fixture.prewarm.prepare(settled(&fixture, name, runtime, entry, &[(entry, source)])).await.unwrap();
        assert_eq!(report.entry_reason, format!("loading {entry} found {found}: served warm"), "{name}");
    }
}

#[tokio::test]
async fn a_module_without_a_handler_runs_as_a_script_and_says_why() {
    let fixture = Fixture::new();
    let script = "const out = { helper: 1 };\nmodule.exports = out;\nconsole.log(JSON.stringify({ ran: true, input: process.env.FUNCTION_INPUT ? JSON.parse(process.env.FUNCTION_INPUT).body : null }));\n";
    let report = fixture
        .prewarm
        .prepare(settled(&fixture, "node-script", Runtime::Node, "index.js", &[("index.js", script)]))
        .await
        .unwrap();
    assert_eq!(report.entry_mode, EntryMode::Main);
    assert_eq!(report.warm_workers, 0);
    assert_eq!(
        report.entry_reason,
        "index.js loaded without a callable `handler` (it exports helper (number)): it runs as a script, one process per call"
    );
    let invocation = fixture.call("node-script@1", r#"{"n":2}"#).await;
    assert_eq!(invocation.result.unwrap(), serde_json::json!({"ran": true, "input": {"n": 2}}));
    assert!(invocation.cold);

    // A Python script that exits cleanly while loading is a script too.
    let python = "import json, os, sys\nhandler_name = 'x'\nprint(json.dumps({'ran': True}))\nsys.exit(0)\n";
    let report = fixture
        .prewarm
        .prepare(settled(&fixture, "py-script", Runtime::Python, "main.py", &[("main.py", python)]))
        .await
        .unwrap();
    assert_eq!(report.entry_mode, EntryMode::Main, "{}", report.entry_reason);
    assert!(report.entry_reason.contains("it exited while loading"), "{}", report.entry_reason);
    assert_eq!(fixture.call("py-script@1", "{}").await.result.unwrap(), serde_json::json!({"ran": true}));

    // `handler` bound to something that is not callable.
    let report = fixture
        .prewarm
        .prepare(settled(
            &fixture,
            "py-data",
            Runtime::Python,
            "main.py",
            &[("main.py", "handler = {'a': 1}\nprint('{}')\n")],
        ))
        .await
        .unwrap();
    assert!(report.entry_reason.contains("`handler` is a dict"), "{}", report.entry_reason);
}

#[tokio::test]
async fn a_script_that_prints_no_result_is_told_what_to_change() {
    let fixture = Fixture::new();
    let spec = settled(&fixture, "silent", Runtime::Node, "index.js", &[("index.js", "module.exports = { n: 1 };\n")]);
    fixture.prewarm.prepare(spec).await.unwrap();
    let invocation = fixture.call("silent@1", "{}").await;
    let error = invocation.error.unwrap();
    assert_eq!(error.code, "invalid_output");
    assert!(error.message.starts_with("the function printed no result line. index.js runs in main mode (index.js loaded without a callable `handler`"), "{}", error.message);
    assert!(error.message.contains("exports.handler = async (body, context)"), "{}", error.message);
    assert!(error.message.contains("console.log(JSON.stringify(result))"), "{}", error.message);
}

#[tokio::test]
async fn a_broken_module_or_a_missing_named_function_fails_prepare() {
    let fixture = Fixture::new();
    let broken = settled(
        &fixture,
        "broken",
        Runtime::Python,
        "main.py",
        &[("main.py", "import not_a_module\ndef handler(b): pass\n")],
    );
    let error = fixture.prewarm.prepare(broken).await.unwrap_err().to_string();
    assert!(error.contains("ModuleNotFoundError"), "{error}");

    // A function the deploy named is called by that name only (no fallback to the default
    // export), and not finding it fails prepare instead of turning the version into a script.
    let mut named = settled(&fixture, "named", Runtime::Node, "index.js", &[("index.js", "module.exports = () => 1;")]);
    named.entry.function = "handle".into();
    let error = fixture.prewarm.prepare(named).await.unwrap_err().to_string();
    assert!(error.contains("index.js loaded without a callable `handle` (it exports default (function))"), "{error}");

    let mut invalid =
        settled(&fixture, "invalid", Runtime::Node, "index.js", &[("index.js", "exports.handler = () => 1;")]);
    invalid.entry.function = "a-b".into();
    assert!(fixture.prewarm.prepare(invalid).await.unwrap_err().to_string().contains("cannot name the function"));
    let mut climbing =
        settled(&fixture, "climbing", Runtime::Node, "../index.js", &[("index.js", "exports.handler = () => 1;")]);
    climbing.entry.file = "../climbing/index.js".into();
    assert!(fixture.prewarm.prepare(climbing).await.unwrap_err().to_string().contains("has no entry file"));
}

#[tokio::test]
async fn lambda_style_handlers_get_a_context() {
    let fixture = Fixture::new();
    let node = r#"exports.handler = async (event, context) => ({
  id: context.invocationId, name: context.functionName, version: context.functionVersion,
  memory: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis(), method: context.method });"#;
    let python = r#"
def handler(event, context):
    return {"id": context.invocation_id, "name": context["function_name"], "version": context.function_version,
            "memory": context.memory_limit_in_mb, "remaining": context.get_remaining_time_in_millis(),
            "method": context["method"]}
"#;
    for (name, runtime, entry, source) in
        [("ctx-node", Runtime::Node, "index.js", node), ("ctx-py", Runtime::Python, "main.py", python)]
    {
        let mut spec = settled(&fixture, name, runtime, entry, &[(entry, source)]);
        spec.version = "7".into();
        spec.limits.memory_bytes = 96 << 20;
        spec.limits.timeout = std::time::Duration::from_millis(4000);
        fixture.prewarm.prepare(spec).await.unwrap();
        let invocation = fixture.call(&format!("{name}@1"), "{}").await;
        let result = invocation.result.clone().unwrap_or_else(|| panic!("{name}: {invocation:?}"));
        assert!(result["id"].as_str().unwrap().starts_with("inv-"), "{name}: {result}");
        assert_eq!((result["name"].as_str(), result["version"].as_str()), (Some(name), Some("7")), "{name}");
        assert_eq!((result["memory"].as_u64(), result["method"].as_str()), (Some(96), Some("POST")), "{name}");
        let remaining = result["remaining"].as_u64().unwrap();
        assert!((3000..=4000).contains(&remaining), "{name}: {remaining} ms left of 4000");
    }
}
