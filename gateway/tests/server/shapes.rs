//! Every common way to write a Node or Python handler deploys through the real server and is
//! served warm; a script still runs one process per call; the deploy answer says which mode a
//! version runs in and why.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{archive, code, Backend, Server};

fn server() -> Option<(Server, String)> {
    let server = Server::start(Backend::Sqlite)?;
    let token = server.user("shapes@example.com");
    Some((server, token))
}

/// The function's invocation records, once `count` of them are written (they are batched).
fn invocations(server: &Server, token: &str, name: &str, count: usize) -> Vec<Value> {
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        let history: Value =
            server.get(&format!("/api/functions/{name}/invocations?limit=50"), Some(token)).json().unwrap();
        let rows = history["invocations"].as_array().cloned().unwrap_or_default();
        if rows.len() >= count || Instant::now() > give_up {
            return rows;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Deploys `files`, then calls the function three times: each answers `{ok: true, event: body}`,
/// none is cold, and one worker process served them all.
fn served_warm(files: &[(&str, &str)], fields: &[(&str, &str)]) {
    let Some((server, token)) = server() else { return };
    let (status, deployed) = server.deploy(&token, "shape", archive(files), fields);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["entry_mode"], "handler", "{deployed}");
    assert_eq!(deployed["entry"]["mode"], "handler");
    assert!(deployed["entry"]["reason"].as_str().unwrap().contains("served warm"), "{deployed}");
    assert_eq!(deployed["warnings"], json!([]));
    for n in 0..3 {
        let response = server.post_json("/fn/shape", Some(&token), &json!({ "n": n }));
        let status = response.status().as_u16();
        let body: Value = response.json().unwrap_or(Value::Null);
        assert_eq!((status, &body), (200, &json!({ "ok": true, "event": { "n": n } })), "call {n}");
    }
    let info: Value = server.get("/api/functions/shape", Some(&token)).json().unwrap();
    assert_eq!(info["pool"]["spawns"], 1, "one worker served every call: {info}");
    assert_eq!(info["entry"], deployed["entry"], "info shows the entry the deploy settled");
    let rows = invocations(&server, &token, "shape", 3);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows.iter().all(|row| row["cold"] == false && row["outcome"] == "ok"), "{rows:?}");
}

#[test]
fn module_exports_an_arrow_function() {
    served_warm(&[("index.js", "module.exports = async (event) => ({ ok: true, event });")], &[]);
}

#[test]
fn module_exports_a_function_declared_as_main() {
    served_warm(
        &[("index.js", "async function main(e) {\n  return { ok: true, event: e };\n}\nmodule.exports = main;\n")],
        &[],
    );
}

#[test]
fn esm_default_export_in_a_type_module_package() {
    served_warm(
        &[
            ("package.json", r#"{"name": "shape", "type": "module"}"#),
            ("index.js", "export default async function (body) {\n  return { ok: true, event: body };\n}\n"),
        ],
        &[],
    );
}

#[test]
fn index_mjs_named_by_package_json_main() {
    served_warm(
        &[
            ("package.json", r#"{"name": "shape", "main": "index.mjs"}"#),
            ("index.mjs", "export async function handler(body) {\n  return { ok: true, event: body };\n}\n"),
        ],
        &[],
    );
}

#[test]
fn python_handler_is_a_lambda() {
    served_warm(&[("main.py", "handler = lambda body: {'ok': True, 'event': body}\n")], &[]);
}

#[test]
fn module_exports_a_named_function_expression() {
    served_warm(
        &[("index.js", "module.exports = async function handler(body) { return { ok: true, event: body }; };")],
        &[],
    );
}

#[test]
fn exports_dot_handler() {
    served_warm(&[("index.js", "exports.handler = async (body) => ({ ok: true, event: body });")], &[]);
}

#[test]
fn python_def_and_async_def_and_a_callable_object() {
    served_warm(&[("main.py", "def handler(body):\n    return {'ok': True, 'event': body}\n")], &[]);
    served_warm(&[("main.py", "async def handler(body):\n    return {'ok': True, 'event': body}\n")], &[]);
    served_warm(
        &[("main.py", "class Handler:\n    def __call__(self, body):\n        return {'ok': True, 'event': body}\n\nhandler = Handler()\n")],
        &[],
    );
}

#[test]
fn commonjs_and_esm_file_extensions_without_package_json() {
    served_warm(&[("index.cjs", "module.exports = (body) => ({ ok: true, event: body });")], &[]);
    served_warm(&[("index.mjs", "export default (body) => ({ ok: true, event: body });")], &[]);
}

#[test]
fn package_json_exports_conditions() {
    served_warm(
        &[
            (
                "package.json",
                r#"{"name": "shape", "exports": {".": {"require": "./dist/index.cjs", "import": "./dist/index.mjs"}}}"#,
            ),
            ("dist/index.mjs", "export const handler = async (body) => ({ ok: true, event: body });"),
            ("dist/index.cjs", "throw new Error('the require build is not the one import() runs');"),
        ],
        &[],
    );
}

#[test]
fn an_explicit_entry_names_the_file_and_the_function() {
    served_warm(
        &[
            ("src/app.py", "from src.reply import reply\n\ndef handle(body):\n    return reply(body)\n"),
            ("src/reply.py", "def reply(body):\n    return {'ok': True, 'event': body}\n"),
            ("main.py", "raise SystemExit('not this file')\n"),
        ],
        &[("entry", "src/app.py:handle")],
    );
    served_warm(
        &[("lib/app.js", "exports.serve = async (body) => ({ ok: true, event: body });")],
        &[("entry", "lib/app.js:serve")],
    );
}

#[test]
fn an_explicit_entry_is_kept_with_the_version_and_checked_where_it_points() {
    let Some((server, token)) = server() else { return };
    let files = [("src/app.py", "def handle(body):\n    return body\n")];
    let (status, deployed) = server.deploy(&token, "named", archive(&files), &[("entry", "src/app.py:handle")]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(
        (deployed["entry"]["file"].as_str(), deployed["entry"]["function"].as_str()),
        (Some("src/app.py"), Some("handle"))
    );
    let versions: Value = server.get("/api/functions/named/versions", Some(&token)).json().unwrap();
    assert_eq!(versions["versions"][0]["entry"]["function"], "handle");
    assert_eq!(versions["versions"][0]["settings"]["entry_function"], "handle");

    // The analyzer reads the file that will run: a denied call there rejects the deploy.
    let hostile = [("src/app.py", "import subprocess\ndef handle(body):\n    return subprocess.run(['id'])\n")];
    let (status, refused) = server.deploy(&token, "named", archive(&hostile), &[("entry", "src/app.py:handle")]);
    assert_eq!((status, code(&refused)), (422, "analysis_rejected"), "{refused}");
    for (entry, expected) in
        [("../etc/passwd", "invalid_field"), ("src/app.py:not-a-name", "invalid_field"), ("/abs.py", "invalid_field")]
    {
        let (status, refused) = server.deploy(&token, "named", archive(&files), &[("entry", entry)]);
        assert_eq!((status, code(&refused)), (400, expected), "{entry}: {refused}");
        assert!(refused["error"]["message"].as_str().unwrap_or_default().starts_with("entry: "), "{refused}");
    }
    let (status, refused) = server.deploy(&token, "named", archive(&files), &[("entry", "src/missing.py")]);
    assert_eq!((status, code(&refused)), (422, "analysis_rejected"), "{refused}");
    // No entry the defaults find: the answer names what the upload holds and how to name the
    // entry, never the temporary directory the server unpacked it in.
    let unusual = [
        ("webhook_receiver.py", "def receive(event, context):\n    return 1\n"),
        ("signing.py", "def verify(body):\n    return True\n"),
        ("notes.txt", ""),
    ];
    let (status, refused) = server.deploy(&token, "unnamed", archive(&unusual), &[]);
    assert_eq!((status, code(&refused)), (422, "missing_entry"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("it has signing.py, webhook_receiver.py;") && message.contains("--entry"), "{message}");
    assert!(!message.contains("/tmp") && !message.contains("staging"), "{message}");
    // A named function that is not there: refused, never run as a script instead.
    let (status, refused) = server.deploy(&token, "named", archive(&files), &[("entry", "src/app.py:serve")]);
    assert_eq!((status, code(&refused)), (422, "analysis_rejected"), "{refused}");
    let node = [("app.js", "exports.handle = () => 1;\n")];
    let (status, refused) = server.deploy(&token, "named", archive(&node), &[("entry", "app.js:serve")]);
    assert_eq!((status, code(&refused)), (422, "startup_failed"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("app.js loaded without a callable `serve` (it exports handle (function))"), "{message}");
    // The version that answered before is still the one answering.
    let response = server.post_json("/fn/named", Some(&token), &json!({ "still": "v1" }));
    assert_eq!(response.json::<Value>().unwrap(), json!({ "still": "v1" }));
}

#[test]
fn scripts_that_print_keep_the_oneshot_contract_and_are_told_why() {
    let Some((server, token)) = server() else { return };
    // Each process draws its own token when it starts: a token seen twice would be a kept process.
    let script = "import json, os\ndata = json.loads(os.environ['FUNCTION_INPUT'])\nprint('log line')\nprint(json.dumps({'process': os.urandom(8).hex(), 'body': data['body']}))\n";
    let (status, deployed) = server.deploy(&token, "script", archive(&[("main.py", script)]), &[]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["entry_mode"], "main");
    assert_eq!(
        deployed["entry"]["reason"],
        "main.py never mentions `handler`: it runs as a script, one process per call"
    );
    let warning = deployed["warnings"][0].as_str().unwrap();
    assert!(warning.starts_with("main.py runs in main mode (main.py never mentions `handler`"), "{warning}");
    let processes: Vec<String> = (0..2)
        .map(|n| {
            let body: Value = server.post_json("/fn/script", Some(&token), &json!({ "n": n })).json().unwrap();
            assert_eq!(body["body"], json!({ "n": n }), "{body}");
            body["process"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(processes[0], processes[1], "one process per call");

    // A module with exports but no handler: loading it at deploy decides, and says what it found.
    let node = "module.exports = { version: 2 };\nconsole.log(JSON.stringify({ ran: true }));\n";
    let (status, deployed) = server.deploy(&token, "node-script", archive(&[("index.js", node)]), &[]);
    assert_eq!((status, deployed["entry_mode"].as_str()), (201, Some("main")), "{deployed}");
    assert_eq!(
        deployed["entry"]["reason"],
        "index.js loaded without a callable `handler` (it exports version (number)): it runs as a script, one process per call"
    );
    let body: Value = server.post_json("/fn/node-script", Some(&token), &json!({})).json().unwrap();
    assert_eq!(body, json!({ "ran": true }));

    // A script that prints nothing: 502 naming the mode, why, and the two ways out.
    let (status, _) = server.deploy(&token, "silent", archive(&[("index.js", "module.exports = { a: 1 };\n")]), &[]);
    assert_eq!(status, 201);
    let response = server.post_json("/fn/silent", Some(&token), &json!({}));
    assert_eq!(response.status(), 502);
    let body: Value = response.json().unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("index.js runs in main mode (index.js loaded without a callable `handler`"), "{message}");
    assert!(message.contains("exports.handler = async (body, context)"), "{message}");
    assert!(message.contains("console.log(JSON.stringify(result))"), "{message}");
}

#[test]
fn lambda_style_handlers_get_the_invocation_context() {
    let Some((server, token)) = server() else { return };
    let source = "exports.handler = async (event, context) => ({ id: context.invocationId, name: context.functionName, version: context.functionVersion, memory: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis(), path: context.path });";
    server.deploy(&token, "ctx", archive(&[("index.js", source)]), &[]);
    let (status, second) =
        server.deploy(&token, "ctx", archive(&[("index.js", source)]), &[("memory_mb", "96"), ("timeout_ms", "3000")]);
    assert_eq!(status, 201, "{second}");
    let response = server.post_json("/fn/ctx/orders/7", Some(&token), &json!({}));
    let id = response.headers()["x-invocation-id"].to_str().unwrap().to_string();
    let body: Value = response.json().unwrap();
    assert_eq!(body["id"], id.as_str(), "{body}");
    assert_eq!(
        (body["name"].as_str(), body["version"].as_str(), body["memory"].as_u64()),
        (Some("ctx"), Some("2"), Some(96))
    );
    assert_eq!(body["path"], "/orders/7");
    let remaining = body["remaining"].as_u64().unwrap();
    assert!((2000..=3000).contains(&remaining), "{remaining} ms left of 3000");
}

/// What writing-functions.md promises for bodies and results that are not JSON, in each runtime
/// here (Dart's side is in scripts/dart-e2e): a body that is not JSON reaches the handler as its
/// raw text; a result that is not JSON answers 502 `invalid_output`, naming the problem to the
/// owner; the worker stays.
#[test]
fn bodies_and_results_that_are_not_json_are_handled_as_documented() {
    let Some((server, token)) = server() else { return };
    let node = "exports.handler = async (body) => body === 'bigint' ? { n: 10n } : { kind: typeof body, body };";
    let python = "def handler(body):\n    if body == 'set':\n        return {1, 2}\n    return {'kind': type(body).__name__, 'body': body}\n";
    for (name, file, source, unserializable, text_kind) in
        [("node-json", "index.js", node, "bigint", "string"), ("python-json", "main.py", python, "set", "str")]
    {
        let (status, deployed) = server.deploy(&token, name, archive(&[(file, source)]), &[]);
        assert_eq!(status, 201, "{deployed}");
        let text = server
            .client
            .post(server.url(&format!("/fn/{name}")))
            .bearer_auth(&token)
            .header("content-type", "text/plain")
            .body("plain words, not JSON")
            .send()
            .unwrap();
        assert_eq!(text.status(), 200);
        let answer: Value = text.json().unwrap();
        assert_eq!(answer, json!({ "kind": text_kind, "body": "plain words, not JSON" }), "{name}");

        let response = server
            .client
            .post(server.url(&format!("/fn/{name}")))
            .bearer_auth(&token)
            .body(unserializable)
            .send()
            .unwrap();
        assert_eq!(response.status(), 502, "{name}");
        let refused: Value = response.json().unwrap();
        assert_eq!(code(&refused), "invalid_output", "{name}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap();
        assert!(message.contains("the handler's result is not JSON-serializable"), "{name}: {message}");

        // The same worker answers the next call.
        let again = server.post_json(&format!("/fn/{name}"), Some(&token), &json!({ "a": 1 }));
        assert_eq!(again.status(), 200, "{name}");
        let info: Value = server.get(&format!("/api/functions/{name}"), Some(&token)).json().unwrap();
        assert_eq!(info["pool"]["spawns"], 1, "{name}: {info}");
    }
}

/// A function whose package is missing a dependency says so, with the fix, wherever it fails:
/// Node prints the cause mid-way through its dying words, never in its last lines.
#[test]
fn a_missing_package_is_named_with_its_fix() {
    let Some((server, token)) = server() else { return };
    let node = [("index.js", "const express = require('express');\nexports.handler = () => express;\n")];
    let (status, refused) = server.deploy(&token, "needs-express", archive(&node), &[]);
    assert_eq!((status, code(&refused)), (422, "startup_failed"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("Cannot find module 'express'") && message.contains("npm install"), "{message}");

    // A script (one process a call) dies with Node's report: its cause, not `} |  | Node.js v…`.
    let script = [("index.js", "require('express');\nconsole.log(JSON.stringify({ ok: true }));\n")];
    assert_eq!(server.deploy(&token, "script-express", archive(&script), &[]).0, 201);
    let answer = server.post_json("/fn/script-express", Some(&token), &serde_json::json!({}));
    assert_eq!(answer.status(), 500);
    let answer: Value = answer.json().unwrap();
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the function exited with status 1: Error: Cannot find module 'express' ("),
        "{message}"
    );
    assert!(message.contains("npm install") && !message.contains("Node.js v"), "{message}");

    let python = [("main.py", "import not_a_package_anywhere\n\ndef handler(body):\n    return 1\n")];
    let (status, refused) = server.deploy(&token, "needs-module", archive(&python), &[]);
    assert_eq!((status, code(&refused)), (422, "startup_failed"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("No module named 'not_a_package_anywhere'") && message.contains("pip install --target ."),
        "{message}"
    );
}

/// A handler exported under another name is served when it is the only one; among several, the
/// deploy says the exact `--entry` that serves each warm.
#[test]
fn a_handler_under_another_name_gets_the_entry_that_serves_it() {
    let Some((server, token)) = server() else { return };
    let only = [("index.js", "exports.githubWebhookListener = async (event) => ({ ok: true });\n")];
    let (status, deployed) = server.deploy(&token, "webhook", archive(&only), &[]);
    assert_eq!((status, deployed["entry_mode"].as_str()), (201, Some("handler")), "{deployed}");
    let reason = deployed["entry"]["reason"].as_str().unwrap();
    assert!(reason.contains("`githubWebhookListener`, the only exported function"), "{deployed}");
    for (name, files, expected) in [
        (
            "webhooks",
            [(
                "index.js",
                "exports.githubWebhookListener = async (event) => ({ ok: true });\nexports.verify = () => true;\n",
            )],
            "to serve one of them warm, deploy with --entry index.js:NAME (githubWebhookListener, verify)",
        ),
        (
            "lambda-style",
            [(
                "main.py",
                "def lambda_handle(event, context):\n    return {'ok': True}\n\ndef helper(x):\n    return x\n",
            )],
            "to serve one of them warm, deploy with --entry main.py:NAME (lambda_handle, helper)",
        ),
    ] {
        let (status, deployed) = server.deploy(&token, name, archive(&files), &[]);
        assert_eq!(status, 201, "{deployed}");
        assert_eq!(deployed["entry_mode"], "main", "{deployed}");
        assert!(deployed["warnings"].to_string().contains(expected), "{name}: {deployed}");
        // Named as it says, it is served warm.
        let entry = expected.rsplit("--entry ").next().unwrap().split(":NAME (").next().unwrap();
        let first = expected.rsplit(":NAME (").next().unwrap().split(',').next().unwrap();
        let entry = format!("{entry}:{first}");
        let (status, deployed) = server.deploy(&token, name, archive(&files), &[("entry", entry.as_str())]);
        assert_eq!((status, deployed["entry_mode"].as_str()), (201, Some("handler")), "{deployed}");
    }
}
