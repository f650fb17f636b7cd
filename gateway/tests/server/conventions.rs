//! Functions written for other platforms run unchanged: Lambda (payload 2.0 and 1.0, Node and
//! Python, async and callback), Web fetch handlers (Workers, Netlify, Vercel route handlers),
//! Node's `(req, res)` (Cloud Functions, Vercel, Express), OpenFaaS's templates, and Python WSGI
//! and ASGI apps. Each is written the way its platform's documentation writes one, deployed
//! without naming its shape, detected, served warm (one spawn) in the sandbox, and called through
//! the real server with sub-paths, queries, headers, cookies, binary bodies and status codes.

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::Value;

use crate::harness::{archive, Backend, Server};

fn server() -> Option<(Server, String)> {
    let server = Server::start(Backend::Sqlite)?;
    let token = server.user("conventions@example.com");
    Some((server, token))
}

/// Deploys the files as a public function; returns the deploy's answer, checking that the shape
/// it reports is `shape`.
fn deploy(
    server: &Server,
    token: &str,
    name: &str,
    files: &[(&str, &str)],
    fields: &[(&str, &str)],
    shape: &str,
) -> Value {
    let mut all = vec![("public", "true")];
    all.extend_from_slice(fields);
    let (status, deployed) = server.deploy(token, name, archive(files), &all);
    assert_eq!(status, 201, "{name}: {deployed}");
    assert_eq!(deployed["entry"]["mode"], "handler", "{name}: {deployed}");
    assert_eq!(deployed["entry"]["shape"], shape, "{name}: {deployed}");
    deployed
}

/// One HTTP/1.1 request written by hand, so header names keep the case they are sent in; returns
/// the status, the header lines and the body.
fn raw_request(server: &Server, request: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let end = answer.windows(4).position(|window| window == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&answer[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    (status, headers, answer[end + 4..].to_vec())
}

fn spawns(server: &Server, token: &str, name: &str) -> u64 {
    let info: Value = server.get(&format!("/api/functions/{name}"), Some(token)).json().unwrap();
    info["pool"]["spawns"].as_u64().unwrap_or_else(|| panic!("no pool.spawns in {info}"))
}

const LAMBDA_ESM: &str = r#"
export const handler = async (event, context) => {
  const name = event.queryStringParameters?.name ?? 'world';
  const bytes = event.body ? Buffer.from(event.body, event.isBase64Encoded ? 'base64' : 'utf8') : Buffer.alloc(0);
  if (event.rawPath === '/teapot') return { statusCode: 418, body: 'short and stout' };
  return {
    statusCode: 200,
    headers: { 'content-type': 'application/json' },
    cookies: ['seen=1; Path=/', 'theme=dark'],
    body: JSON.stringify({
      path: event.rawPath,
      query: event.rawQueryString,
      name,
      method: event.requestContext.http.method,
      cookies: event.cookies ?? [],
      tags: event.queryStringParameters?.tag,
      requestId: context.awsRequestId,
      remaining: context.getRemainingTimeInMillis() > 0,
      binary: event.isBase64Encoded,
      firstByte: bytes[0] ?? null,
      length: bytes.length,
    }),
  };
};
"#;

const LAMBDA_CALLBACK: &str = r#"
exports.handler = function (event, context, callback) {
  if (event.rawPath === '/fail') {
    callback(new Error('asked to fail'));
    return;
  }
  setTimeout(() => callback(null, { statusCode: 201, body: `made ${event.rawPath}` }), 5);
};
"#;

const LAMBDA_REST: &str = r#"
exports.lambdaHandler = async (event) => ({
  statusCode: 200,
  multiValueHeaders: { 'X-Seen': ['a', 'b'] },
  body: JSON.stringify({
    method: event.httpMethod,
    path: event.path,
    signature: event.headers['X-Hub-Signature'] ?? null,
    tags: event.multiValueQueryStringParameters?.tag ?? null,
    proxy: event.pathParameters?.proxy ?? null,
  }),
});
"#;

const LAMBDA_PY: &str = r#"
import base64
import json


def lambda_handler(event, context):
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({
            "path": event["rawPath"],
            "params": event.get("queryStringParameters"),
            "requestId": context.aws_request_id,
            "remaining": context.get_remaining_time_in_millis() > 0,
            "length": len(raw),
        }),
    }
"#;

#[test]
fn lambda_handlers_get_the_event_lambda_would_pass_and_answer_through_it() {
    let Some((server, token)) = server() else { return };

    let deployed = deploy(&server, &token, "lam", &[("index.mjs", LAMBDA_ESM)], &[], "lambda");
    assert!(deployed["entry"]["shape_reason"].as_str().unwrap().contains("queryStringParameters"), "{deployed}");
    let answer = server
        .client
        .post(server.url("/fn/lam/a/b?name=ada&tag=x&tag=y"))
        .header("cookie", "session=abc; lang=en")
        .body(vec![0xff, 0x00, 0x41])
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let cookies: Vec<_> =
        answer.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    assert!(cookies[0].starts_with("seen=1"), "{cookies:?}");
    let body: Value = answer.json().unwrap();
    assert_eq!(body["path"], "/a/b", "the sub-path is the event's rawPath: {body}");
    assert_eq!(body["query"], "name=ada&tag=x&tag=y");
    assert_eq!(body["name"], "ada");
    assert_eq!(body["tags"], "x,y", "payload 2.0 joins repeated keys with commas: {body}");
    assert_eq!(body["method"], "POST");
    assert_eq!(body["cookies"], serde_json::json!(["session=abc", "lang=en"]));
    assert!(body["requestId"].as_str().unwrap().starts_with("inv"), "{body}");
    assert_eq!(body["remaining"], true);
    assert_eq!(
        (body["binary"].clone(), body["firstByte"].clone(), body["length"].clone()),
        (true.into(), 255.into(), 3.into())
    );
    let teapot = server.client.get(server.url("/fn/lam/teapot")).send().unwrap();
    assert_eq!(teapot.status(), 418);
    assert_eq!(teapot.text().unwrap(), "short and stout");

    // A callback handler: the call ends when the callback is called, an error through it is the call's error.
    deploy(&server, &token, "cb", &[("index.js", LAMBDA_CALLBACK)], &[], "lambda");
    let made = server.client.put(server.url("/fn/cb/thing")).send().unwrap();
    assert_eq!(made.status(), 201);
    assert_eq!(made.text().unwrap(), "made /thing");
    let failed = server.client.get(server.url("/fn/cb/fail")).send().unwrap();
    assert_eq!(failed.status(), 500);
    assert!(failed.text().unwrap().contains("asked to fail"));

    // API Gateway REST (1.0): header names as sent, repeated values kept, in and out.
    let deployed =
        deploy(&server, &token, "rest", &[("app.js", LAMBDA_REST)], &[("entry", "app.js:lambdaHandler")], "lambda-v1");
    assert!(deployed["entry"]["shape_reason"].as_str().unwrap().contains("httpMethod"), "{deployed}");
    let (status, headers, body) = raw_request(
        &server,
        "GET /fn/rest/hooks/github?tag=a&tag=b HTTP/1.1\r\nHost: localhost\r\nX-Hub-Signature: sha1=abc\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let seen: Vec<_> = headers.iter().filter(|(name, _)| name == "x-seen").map(|(_, value)| value.as_str()).collect();
    assert_eq!(seen, ["a", "b"]);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["signature"], "sha1=abc", "the header's case is kept: {body}");
    assert_eq!(body["method"], "GET");
    assert_eq!(body["path"], "/hooks/github");
    assert_eq!(body["proxy"], "hooks/github");
    assert_eq!(body["tags"], serde_json::json!(["a", "b"]));

    // Python, Lambda's own file and function names, found without --entry.
    let deployed = deploy(&server, &token, "lampy", &[("lambda_function.py", LAMBDA_PY)], &[], "lambda");
    assert_eq!(deployed["entry"]["file"], "lambda_function.py", "{deployed}");
    assert_eq!(deployed["entry"]["function"], "lambda_handler", "{deployed}");
    for _ in 0..3 {
        let answer = server.client.post(server.url("/fn/lampy/x?q=1")).body("hello").send().unwrap();
        assert_eq!(answer.status(), 200);
        let body: Value = answer.json().unwrap();
        assert_eq!(body["path"], "/x");
        assert_eq!(body["params"], serde_json::json!({"q": "1"}));
        assert_eq!(body["length"], 5);
        assert_eq!(body["remaining"], true);
    }
    for name in ["lam", "cb", "rest", "lampy"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

const WORKERS: &str = r#"
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    ctx.waitUntil(Promise.resolve());
    if (url.pathname === '/hello') {
      return new Response(`hello ${url.searchParams.get('name') ?? 'world'}`, { headers: { 'content-type': 'text/plain' } });
    }
    if (url.pathname === '/echo' && request.method === 'POST') {
      const bytes = new Uint8Array(await request.arrayBuffer());
      return new Response(bytes.reverse(), { status: 201, headers: { 'content-type': 'application/octet-stream' } });
    }
    if (url.pathname === '/stream') {
      const parts = ['a', 'b', 'c'];
      const body = new ReadableStream({ pull(controller) { parts.length ? controller.enqueue(new TextEncoder().encode(parts.shift())) : controller.close(); } });
      return new Response(body, { headers: { 'content-type': 'text/plain' } });
    }
    if (url.pathname === '/json') {
      const headers = new Headers({ 'content-type': 'application/json' });
      headers.append('set-cookie', 'a=1; Path=/');
      headers.append('set-cookie', 'b=2; Path=/');
      return new Response(JSON.stringify({ agent: request.headers.get('user-agent'), name: env.FUNCTION_NAME }), { headers });
    }
    return new Response('not found', { status: 404 });
  },
};
"#;

const NETLIFY: &str = r#"
export default async (req, context) => {
  const url = new URL(req.url);
  const body = req.method === 'POST' ? await req.json() : null;
  return Response.json({ path: url.pathname, got: body, requestId: context.requestId, session: context.cookies.get('session') ?? null });
};
"#;

const ROUTE_HANDLERS: &str = r#"
export async function GET(request) {
  const { searchParams } = new URL(request.url);
  return Response.json({ id: searchParams.get('id') });
}

export async function POST(request) {
  const item = await request.json();
  return new Response(JSON.stringify({ created: item.name }), { status: 201, headers: { 'content-type': 'application/json' } });
}
"#;

#[test]
fn fetch_handlers_take_a_web_request_and_answer_with_a_response() {
    let Some((server, token)) = server() else { return };

    deploy(&server, &token, "worker", &[("index.mjs", WORKERS)], &[], "fetch");
    let hello = server.client.get(server.url("/fn/worker/hello?name=ada")).send().unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.headers()["content-type"], "text/plain");
    assert_eq!(hello.text().unwrap(), "hello ada");
    let echo = server.client.post(server.url("/fn/worker/echo")).body(vec![1u8, 2, 0xff]).send().unwrap();
    assert_eq!(echo.status(), 201);
    assert_eq!(echo.bytes().unwrap().as_ref(), &[0xff, 2, 1], "binary bodies travel both ways");
    let streamed = server.client.get(server.url("/fn/worker/stream")).send().unwrap();
    assert_eq!(streamed.text().unwrap(), "abc", "a streamed body is read to its end");
    let json = server.client.get(server.url("/fn/worker/json")).header("user-agent", "probe/1").send().unwrap();
    let cookies: Vec<_> =
        json.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies.len(), 2, "each Set-Cookie is its own header: {cookies:?}");
    let body: Value = json.json().unwrap();
    assert_eq!((body["agent"].as_str(), body["name"].as_str()), (Some("probe/1"), Some("worker")));
    assert_eq!(server.client.get(server.url("/fn/worker/nope")).send().unwrap().status(), 404);

    deploy(&server, &token, "netlify", &[("index.mjs", NETLIFY)], &[], "fetch");
    let answer = server
        .client
        .post(server.url("/fn/netlify/api/items"))
        .header("cookie", "session=s1")
        .json(&serde_json::json!({"name": "x"}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    let body: Value = answer.json().unwrap();
    assert_eq!(body["path"], "/api/items");
    assert_eq!(body["got"], serde_json::json!({"name": "x"}));
    assert_eq!(body["session"], "s1");
    assert!(body["requestId"].as_str().unwrap().starts_with("inv"));

    deploy(&server, &token, "route", &[("index.mjs", ROUTE_HANDLERS)], &[], "fetch");
    let got: Value = server.client.get(server.url("/fn/route?id=7")).send().unwrap().json().unwrap();
    assert_eq!(got["id"], "7");
    let created = server.client.post(server.url("/fn/route")).json(&serde_json::json!({"name": "pen"})).send().unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().unwrap()["created"], "pen");
    let refused = server.client.delete(server.url("/fn/route")).send().unwrap();
    assert_eq!(refused.status(), 405, "a method without an export is refused");
    assert_eq!(refused.headers()["allow"], "GET, POST");
    for name in ["worker", "netlify", "route"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

const CLOUD_FUNCTION: &str = r#"
const functions = require('@google-cloud/functions-framework');

functions.http('helloHttp', (req, res) => {
  if (req.method === 'POST' && req.get('Content-Type') === 'application/json') {
    res.status(201).json({ hello: req.body.name, raw: req.rawBody.length });
    return;
  }
  res.set('X-Served-By', 'gcf');
  res.cookie('visited', 'yes', { httpOnly: true });
  res.send(`Hello ${req.query.name || 'World'} from ${req.path || req.url}!`);
});
"#;

const VERCEL_NODE: &str = r#"
module.exports = (req, res) => {
  const { name = 'World' } = req.query;
  res.statusCode = 200;
  res.setHeader('Content-Type', 'text/plain');
  res.write(`Hello ${name}, `);
  res.end(`cookie ${req.cookies.flavor}; url ${req.url}`);
};
"#;

const WRITE_HEAD: &str = r#"
exports.handler = function handler(req, res) {
  let data = '';
  req.on('data', (chunk) => { data += chunk; });
  req.on('end', () => {
    res.writeHead(202, { 'Content-Type': 'application/json', 'X-Length': String(data.length) });
    res.end(JSON.stringify({ method: req.method, received: data, raw: req.rawHeaders.includes('X-Custom-Case') }));
  });
};
"#;

#[test]
fn node_request_response_handlers_answer_through_res() {
    let Some((server, token)) = server() else { return };

    // Cloud Functions: registered with the framework, which need not be uploaded.
    let deployed = deploy(&server, &token, "gcf", &[("index.js", CLOUD_FUNCTION)], &[], "node-http");
    assert!(deployed["entry"]["reason"].as_str().unwrap().contains("helloHttp"), "{deployed}");
    let hello = server.client.get(server.url("/fn/gcf/greet?name=Ada")).send().unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.headers()["x-served-by"], "gcf");
    assert!(hello.headers()["set-cookie"].to_str().unwrap().starts_with("visited=yes; Path="), "{:?}", hello.headers());
    assert_eq!(hello.text().unwrap(), "Hello Ada from /greet?name=Ada!");
    let created = server.client.post(server.url("/fn/gcf")).json(&serde_json::json!({"name": "Bo"})).send().unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().unwrap(), serde_json::json!({"hello": "Bo", "raw": 13}));

    deploy(&server, &token, "vercel", &[("api/index.js", VERCEL_NODE)], &[("entry", "api/index.js")], "node-http");
    let answer = server.client.get(server.url("/fn/vercel/x?name=Cy")).header("cookie", "flavor=mint").send().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().unwrap(), "Hello Cy, cookie mint; url /x?name=Cy");

    deploy(&server, &token, "stream", &[("index.js", WRITE_HEAD)], &[], "node-http");
    let (status, headers, body) = raw_request(
        &server,
        "PUT /fn/stream HTTP/1.1\r\nHost: localhost\r\nX-Custom-Case: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert_eq!(status, 202);
    assert!(headers.contains(&("x-length".into(), "5".into())), "{headers:?}");
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body, serde_json::json!({"method": "PUT", "received": "hello", "raw": true}));
    for name in ["gcf", "vercel", "stream"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

const OPENFAAS_NODE: &str = r#"
'use strict'

module.exports = async (event, context) => {
  const result = { method: event.method, path: event.path, body: event.body, q: event.query.q };
  return context
    .status(201)
    .headers({ 'X-OpenFaaS': 'yes' })
    .succeed(result);
};
"#;

const OPENFAAS_PY: &str = r#"
import json


def handle(event, context):
    data = json.loads(event.body) if event.body else {}
    return {
        "statusCode": 200,
        "body": {"got": data, "path": event.path, "method": event.method, "q": event.query.get("q"),
                 "agent": event.headers.get("User-Agent")},
        "headers": {"X-Template": "python3-http"},
    }
"#;

#[test]
fn openfaas_templates_answer_through_their_context_or_result() {
    let Some((server, token)) = server() else { return };
    deploy(&server, &token, "faas-node", &[("handler.js", OPENFAAS_NODE)], &[], "openfaas");
    let answer =
        server.client.post(server.url("/fn/faas-node/p?q=1")).json(&serde_json::json!({"a": 1})).send().unwrap();
    assert_eq!(answer.status(), 201);
    assert_eq!(answer.headers()["x-openfaas"], "yes");
    let body: Value = answer.json().unwrap();
    assert_eq!(body, serde_json::json!({"method": "POST", "path": "/p", "body": {"a": 1}, "q": "1"}));

    let deployed = deploy(&server, &token, "faas-py", &[("handler.py", OPENFAAS_PY)], &[], "openfaas");
    assert_eq!(deployed["entry"]["function"], "handle", "{deployed}");
    let answer = server
        .client
        .put(server.url("/fn/faas-py/items?q=2"))
        .header("user-agent", "probe/2")
        .json(&serde_json::json!({"b": 2}))
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-template"], "python3-http");
    let body: Value = answer.json().unwrap();
    assert_eq!(
        body,
        serde_json::json!({"got": {"b": 2}, "path": "/items", "method": "PUT", "q": "2", "agent": "probe/2"})
    );
    for name in ["faas-node", "faas-py"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

const WSGI_APP: &str = r#"
import json


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/missing":
        start_response("404 NOT FOUND", [("Content-Type", "text/plain")])
        return [b"no such page"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/json"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return [json.dumps({
        "path": path, "query": environ["QUERY_STRING"], "method": environ["REQUEST_METHOD"],
        "signature": environ.get("HTTP_X_HUB_SIGNATURE"), "length": len(body), "type": environ.get("CONTENT_TYPE"),
    }).encode()]
"#;

const ASGI_APP: &str = r#"
import json

started = []


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        if message["type"] == "lifespan.startup":
            started.append(True)
            await send({"type": "lifespan.startup.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"x-started", str(len(started)).encode())]})
    await send({"type": "http.response.body", "body": json.dumps({
        "path": scope["path"], "query": scope["query_string"].decode(), "method": scope["method"], "length": len(body),
    }).encode(), "more_body": True})
    await send({"type": "http.response.body", "body": b"\n"})
"#;

#[test]
fn python_wsgi_and_asgi_apps_serve_their_own_routes() {
    let Some((server, token)) = server() else { return };
    let deployed = deploy(&server, &token, "wsgi", &[("app.py", WSGI_APP)], &[], "wsgi");
    assert_eq!(deployed["entry"]["function"], "app", "{deployed}");
    let answer = server
        .client
        .post(server.url("/fn/wsgi/users/7?x=1&x=2"))
        .header("x-hub-signature", "sha1=abc")
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers().get_all("set-cookie").iter().count(), 2);
    let body: Value = answer.json().unwrap();
    assert_eq!(
        body,
        serde_json::json!({"path": "/users/7", "query": "x=1&x=2", "method": "POST", "signature": "sha1=abc", "length": 5, "type": "text/plain"})
    );
    assert_eq!(server.client.get(server.url("/fn/wsgi/missing")).send().unwrap().status(), 404);

    deploy(&server, &token, "asgi", &[("main.py", ASGI_APP)], &[("entry", "main.py:app")], "asgi");
    let answer = server.client.patch(server.url("/fn/asgi/a/b?y=3")).body("abc").send().unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-started"], "1", "the lifespan startup ran once");
    let text = answer.text().unwrap();
    assert!(text.ends_with('\n'), "every body chunk is sent: {text:?}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body, serde_json::json!({"path": "/a/b", "query": "y=3", "method": "PATCH", "length": 3}));
    assert_eq!(server.client.get(server.url("/fn/asgi/missing")).send().unwrap().status(), 404);
    for name in ["wsgi", "asgi"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

const EXPRESS_APP: &str = r#"
const express = require('express');

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.send('Hello from root!');
});

app.get('/users/:id', (req, res) => {
  res.json({ id: req.params.id, q: req.query.q ?? null });
});

app.post('/items', (req, res) => {
  res.status(201).json({ created: req.body.name });
});

module.exports = app;
"#;

/// The files of `dir` (recursively) under `prefix`, for an archive.
fn files_under(dir: &std::path::Path, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = format!("{prefix}/{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(files_under(&path, &name));
        } else if kind.is_file() {
            files.push((name, std::fs::read(&path).unwrap()));
        }
    }
    files
}

#[test]
fn an_express_app_answers_each_of_its_routes_and_404_for_others() {
    let Some(express) = std::env::var_os("CONTAINERPUB_TEST_EXPRESS") else {
        crate::harness::skip(
            "the Express convention test: CONTAINERPUB_TEST_EXPRESS is not set (scripts/test installs Express)",
        );
        return;
    };
    // Express and its dependencies are some 700 files.
    let limits = "[deploy]\nmax_archive_bytes = 5000000\nmax_expanded_bytes = 20000000\nmax_entries = 5000\n";
    let Some(server) = Server::start_with_config(Backend::Sqlite, limits, &[]) else { return };
    let token = server.user("express@example.com");
    let mut builder = tar::Builder::new(Vec::new());
    let mut files = files_under(&std::path::Path::new(&express).join("node_modules"), "node_modules");
    files.push(("index.js".into(), EXPRESS_APP.as_bytes().to_vec()));
    for (path, contents) in &files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, contents.as_slice()).unwrap();
    }
    let upload = crate::harness::gzip(&builder.into_inner().unwrap());
    let (status, deployed) = server.deploy(&token, "express", upload, &[("public", "true")]);
    assert_eq!(status, 201, "{deployed}");
    assert_eq!(deployed["entry"]["shape"], "node-http", "{deployed}");
    assert!(deployed["entry"]["shape_reason"].as_str().unwrap().contains("Express"), "{deployed}");

    let root = server.client.get(server.url("/fn/express")).send().unwrap();
    assert_eq!(root.status(), 200);
    assert_eq!(root.text().unwrap(), "Hello from root!");
    let user = server.client.get(server.url("/fn/express/users/42?q=x")).send().unwrap();
    assert_eq!(user.status(), 200);
    assert_eq!(user.json::<Value>().unwrap(), serde_json::json!({"id": "42", "q": "x"}));
    let created =
        server.client.post(server.url("/fn/express/items")).json(&serde_json::json!({"name": "pen"})).send().unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(created.json::<Value>().unwrap(), serde_json::json!({"created": "pen"}));
    let unknown = server.client.get(server.url("/fn/express/nowhere")).send().unwrap();
    assert_eq!(unknown.status(), 404, "an unknown route is Express's own 404, never the root's 200");
    assert!(unknown.text().unwrap().contains("Cannot GET /nowhere"));
    assert_eq!(spawns(&server, &token, "express"), 1, "served warm by one worker");
}

const SAM_TEMPLATE: &str = r#"AWSTemplateFormatVersion: '2010-09-09'
Transform: AWS::Serverless-2016-10-31
Description: a sample

Globals:
  Function:
    Timeout: 3

Resources:
  HelloWorldFunction:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: hello-world/
      Handler: app.lambdaHandler
      Runtime: nodejs20.x
      Events:
        HelloWorld:
          Type: Api
          Properties:
            Path: /hello
            Method: get

Outputs:
  HelloWorldApi:
    Value: !Sub "https://${ServerlessRestApi}.execute-api.${AWS::Region}.amazonaws.com/Prod/hello/"
"#;

const SAM_APP: &str = r#"
export const lambdaHandler = async (event, context) => {
  return {
    statusCode: 200,
    body: JSON.stringify({ message: 'hello world', method: event.httpMethod, path: event.path }),
  };
};
"#;

#[test]
fn manifests_beside_the_code_name_the_entry_and_the_event_shape() {
    let Some((server, token)) = server() else { return };
    let files = [("template.yaml", SAM_TEMPLATE), ("hello-world/app.mjs", SAM_APP)];
    let deployed = deploy(&server, &token, "sam", &files, &[], "lambda-v1");
    assert_eq!(deployed["entry"]["file"], "hello-world/app.mjs", "{deployed}");
    assert_eq!(deployed["entry"]["function"], "lambdaHandler", "{deployed}");
    assert!(
        deployed["entry"]["shape_reason"].as_str().unwrap().contains("template.yaml (HelloWorldFunction)"),
        "{deployed}"
    );
    let answer: Value = server.client.get(server.url("/fn/sam/hello")).send().unwrap().json().unwrap();
    assert_eq!(answer, serde_json::json!({"message": "hello world", "method": "GET", "path": "/hello"}));

    // Two functions and nothing saying which: the answer lists each with the flags that deploy it.
    let serverless = "service: two\nprovider:\n  name: aws\n  runtime: nodejs20.x\nfunctions:\n  hello:\n    handler: handler.hello\n  bye:\n    handler: handler.bye\n";
    let two = [
        ("serverless.yml", serverless),
        ("handler.js", "module.exports.hello = async () => 1;\nmodule.exports.bye = async () => 2;\n"),
    ];
    let (status, refused) = server.deploy(&token, "two", archive(&two), &[]);
    assert_eq!((status, crate::harness::code(&refused)), (422, "several_functions"), "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("--entry handler.js:hello --name hello")
            && message.contains("--entry handler.js:bye --name bye"),
        "{message}"
    );
    let deployed = deploy(&server, &token, "bye", &two, &[("entry", "handler.js:bye")], "body");
    assert_eq!(deployed["entry"]["function"], "bye");
}

const CLOUD_FUNCTION_PY: &str = r#"
import functions_framework


@functions_framework.http
def hello_http(request):
    data = request.get_json(silent=True)
    if request.path == "/teapot":
        return "short and stout", 418, {"X-Kind": "teapot"}
    if data and "name" in data:
        return {"hello": data["name"], "method": request.method}
    return f"Hello {request.args.get('name', 'World')} ({request.headers.get('X-Probe')}, {request.args.getlist('tag')})!"
"#;

const VERCEL_PY: &str = r#"
from http.server import BaseHTTPRequestHandler


class handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-type", "text/plain")
        self.end_headers()
        self.wfile.write(f"Hello from {self.path}".encode("utf-8"))

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length)
        self.send_response(201)
        self.send_header("Content-type", "application/octet-stream")
        self.end_headers()
        self.wfile.write(body[::-1])
"#;

#[test]
fn python_request_functions_and_request_handler_classes_answer_as_their_platforms() {
    let Some((server, token)) = server() else { return };
    // Cloud Functions' Python: the framework need not be uploaded.
    let deployed = deploy(&server, &token, "gcf-py", &[("main.py", CLOUD_FUNCTION_PY)], &[], "flask-request");
    assert_eq!(deployed["entry"]["function"], "hello_http", "{deployed}");
    let text = server.client.get(server.url("/fn/gcf-py?name=Ada&tag=a&tag=b")).header("x-probe", "p1").send().unwrap();
    assert_eq!(text.status(), 200);
    assert_eq!(text.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(text.text().unwrap(), "Hello Ada (p1, ['a', 'b'])!");
    let json: Value = server
        .client
        .post(server.url("/fn/gcf-py"))
        .json(&serde_json::json!({"name": "Bo"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(json, serde_json::json!({"hello": "Bo", "method": "POST"}));
    let teapot = server.client.get(server.url("/fn/gcf-py/teapot")).send().unwrap();
    assert_eq!((teapot.status().as_u16(), teapot.headers()["x-kind"].to_str().unwrap()), (418, "teapot"));

    // Vercel's Python: a request handler class under api/, found without --entry.
    let deployed = deploy(
        &server,
        &token,
        "vercel-py",
        &[("api/index.py", VERCEL_PY), ("vercel.json", "{}")],
        &[],
        "http-handler",
    );
    assert_eq!(deployed["entry"]["file"], "api/index.py", "{deployed}");
    let hello = server.client.get(server.url("/fn/vercel-py/x?y=1")).send().unwrap();
    assert_eq!(hello.status(), 200);
    assert_eq!(hello.text().unwrap(), "Hello from /x?y=1");
    let posted = server.client.post(server.url("/fn/vercel-py")).body(vec![1u8, 2, 0xfe]).send().unwrap();
    assert_eq!(posted.status(), 201);
    assert_eq!(posted.bytes().unwrap().as_ref(), &[0xfe, 2, 1]);
    let refused = server.client.delete(server.url("/fn/vercel-py")).send().unwrap();
    assert_eq!(refused.status(), 501, "a method the class lacks is answered as http.server answers it");
    for name in ["gcf-py", "vercel-py"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

const KNATIVE_NODE: &str = r#"
const handle = async (context, body) => {
  context.log.info('query', context.query);
  if (context.method === 'POST') {
    return { statusCode: 201, body: { received: body, q: context.query.q }, headers: { 'x-kind': 'knative' } };
  }
  return { body: 'OK', headers: { 'content-type': 'text/plain' } };
};

module.exports = { handle };
"#;

const KNATIVE_PY: &str = r#"
def new():
    return Function()


class Function:
    def start(self, cfg):
        self.started = "FUNCTION_NAME" in cfg

    async def handle(self, scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [[b"content-type", b"text/plain"]]})
        await send({"type": "http.response.body", "body": f"OK {scope['path']} {self.started}".encode()})
"#;

const APPWRITE_NODE: &str = r#"
export default async ({ req, res, log, error }) => {
  log(`path ${req.path}`);
  if (req.path === '/ping') {
    return res.text('Pong');
  }
  if (req.method === 'POST') {
    return res.json({ got: req.bodyJson, agent: req.headers['user-agent'] }, 201, { 'x-kind': 'appwrite' });
  }
  return res.json({ motto: 'Build like a team of hundreds_', q: req.query.q ?? null });
};
"#;

const APPWRITE_PY: &str = r#"
def main(context):
    context.log("path " + context.req.path)
    if context.req.path == "/ping":
        return context.res.text("Pong")
    return context.res.json({"method": context.req.method, "q": context.req.query.get("q")})
"#;

const FISSION_NODE: &str = r#"
module.exports = async (context) => {
  return {
    status: 200,
    body: `hello, ${context.request.query.name || 'world'}!\n`,
  };
};
"#;

const OPENWHISK_NODE: &str = r#"
function main(params) {
  var greeting = 'hello, ' + params.payload + '!';
  console.log(greeting);
  return { payload: greeting, method: params.__ow_method, path: params.__ow_path };
}
"#;

const OPENWHISK_PY: &str = r#"
def main(args):
    name = args.get("name", "stranger")
    return {"greeting": "Hello " + name + "!"}
"#;

#[test]
fn knative_appwrite_fission_and_openwhisk_functions_answer_as_their_platforms() {
    let Some((server, token)) = server() else { return };
    deploy(&server, &token, "kn-node", &[("index.js", KNATIVE_NODE)], &[], "knative");
    let ok = server.client.get(server.url("/fn/kn-node")).send().unwrap();
    assert_eq!((ok.status().as_u16(), ok.text().unwrap()), (200, "OK".to_string()));
    let posted = server.client.post(server.url("/fn/kn-node?q=1")).json(&serde_json::json!({"a": 1})).send().unwrap();
    assert_eq!(posted.status(), 201);
    assert_eq!(posted.headers()["x-kind"], "knative");
    assert_eq!(posted.json::<Value>().unwrap(), serde_json::json!({"received": {"a": 1}, "q": "1"}));

    let files = [
        ("function/func.py", KNATIVE_PY),
        ("function/__init__.py", "from .func import new\n"),
        ("pyproject.toml", "[project]\nname = \"f\"\n"),
    ];
    let deployed = deploy(&server, &token, "kn-py", &files, &[], "knative");
    assert_eq!(
        (deployed["entry"]["file"].as_str(), deployed["entry"]["function"].as_str()),
        (Some("function/func.py"), Some("new"))
    );
    let ok = server.client.get(server.url("/fn/kn-py/x")).send().unwrap();
    assert_eq!(ok.text().unwrap(), "OK /x True", "start(cfg) ran once with the environment");

    deploy(
        &server,
        &token,
        "aw-node",
        &[("src/main.js", APPWRITE_NODE), ("package.json", r#"{"main": "src/main.js", "type": "module"}"#)],
        &[],
        "appwrite",
    );
    assert_eq!(server.client.get(server.url("/fn/aw-node/ping")).send().unwrap().text().unwrap(), "Pong");
    let posted = server
        .client
        .post(server.url("/fn/aw-node"))
        .header("user-agent", "probe/3")
        .json(&serde_json::json!({"b": 2}))
        .send()
        .unwrap();
    assert_eq!((posted.status().as_u16(), posted.headers()["x-kind"].to_str().unwrap()), (201, "appwrite"));
    assert_eq!(posted.json::<Value>().unwrap(), serde_json::json!({"got": {"b": 2}, "agent": "probe/3"}));
    deploy(&server, &token, "aw-py", &[("src/main.py", APPWRITE_PY), ("requirements.txt", "")], &[], "appwrite");
    assert_eq!(server.client.get(server.url("/fn/aw-py/ping")).send().unwrap().text().unwrap(), "Pong");
    let answer: Value = server.client.put(server.url("/fn/aw-py?q=z")).send().unwrap().json().unwrap();
    assert_eq!(answer, serde_json::json!({"method": "PUT", "q": "z"}));

    deploy(&server, &token, "fission", &[("hello.js", FISSION_NODE)], &[], "fission");
    let hello = server.client.get(server.url("/fn/fission?name=Ada")).send().unwrap();
    assert_eq!((hello.status().as_u16(), hello.text().unwrap()), (200, "hello, Ada!\n".to_string()));

    deploy(&server, &token, "ow-node", &[("hello.js", OPENWHISK_NODE)], &[], "openwhisk");
    let answer: Value = server.client.get(server.url("/fn/ow-node/a?payload=Ada")).send().unwrap().json().unwrap();
    assert_eq!(answer, serde_json::json!({"payload": "hello, Ada!", "method": "get", "path": "/a"}));
    deploy(&server, &token, "ow-py", &[("hello.py", OPENWHISK_PY)], &[], "openwhisk");
    let answer: Value = server
        .client
        .post(server.url("/fn/ow-py"))
        .json(&serde_json::json!({"name": "Bo"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer, serde_json::json!({"greeting": "Hello Bo!"}));
    for name in ["kn-node", "kn-py", "aw-node", "aw-py", "fission", "ow-node", "ow-py"] {
        assert_eq!(spawns(&server, &token, name), 1, "{name} is served warm by one worker");
    }
}

#[test]
fn a_named_shape_is_kept_and_one_the_runtime_lacks_is_refused() {
    let Some((server, token)) = server() else { return };
    // Nothing in this code says Lambda; the deploy does.
    let plain =
        "exports.handler = async (e) => ({ statusCode: 200, body: `got ${JSON.stringify(e).slice(0, 40)}` });\n";
    let deployed = deploy(&server, &token, "told", &[("index.js", plain)], &[("shape", "lambda")], "lambda");
    assert_eq!(deployed["entry"]["shape_reason"], Value::Null, "a shape that was named is not explained as detected");
    let told = server.client.get(server.url("/fn/told/x")).send().unwrap().text().unwrap();
    assert!(told.starts_with(r#"got {"version":"2.0","routeKey":"$default""#), "{told}");
    let info: Value = server.get("/api/functions/told", Some(&token)).json().unwrap();
    assert_eq!(info["entry"]["shape"], "lambda", "{info}");
    // The same code without it is this platform's: the body is what it gets.
    deploy(&server, &token, "untold", &[("index.js", plain)], &[], "body");
    assert_eq!(server.client.get(server.url("/fn/untold/x")).send().unwrap().text().unwrap(), "got {}");

    let (status, refused) = server.deploy(
        &token,
        "wrong",
        archive(&[("main.py", "def handler(body):\n    return 1\n")]),
        &[("shape", "fetch")],
    );
    assert_eq!((status, crate::harness::code(&refused)), (422, "invalid_shape"), "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap().contains("wsgi"), "it lists Python's shapes: {refused}");
    let (status, refused) = server.deploy(
        &token,
        "wrong",
        archive(&[("main.py", "def handler(body):\n    return 1\n")]),
        &[("shape", "soap")],
    );
    assert_eq!((status, crate::harness::code(&refused)), (400, "invalid_field"), "{refused}");
}

#[test]
fn a_failure_in_any_shape_is_the_calls_error_never_a_200() {
    let Some((server, token)) = server() else { return };
    // (name, files, the shape detected, what the error says)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [Case; 5] = [
        (
            "f-fetch",
            &[("index.mjs", "export default { async fetch(request) { throw new Error('fetch broke'); } };\n")],
            "fetch",
            "fetch broke",
        ),
        (
            "f-http",
            &[("index.js", "module.exports = (req, res) => { throw new Error('res broke'); };\n")],
            "node-http",
            "res broke",
        ),
        (
            "f-faas",
            &[(
                "handler.js",
                "module.exports = async (event, context) => context.status(200).fail(new Error('faas broke'));\n",
            )],
            "openfaas",
            "faas broke",
        ),
        (
            "f-wsgi",
            &[("app.py", "def app(environ, start_response):\n    raise ValueError('wsgi broke')\n")],
            "wsgi",
            "wsgi broke",
        ),
        (
            "f-lambda",
            &[("lambda_function.py", "def lambda_handler(event, context):\n    raise KeyError('lambda broke')\n")],
            "lambda",
            "lambda broke",
        ),
    ];
    for (name, files, shape, message) in cases {
        deploy(&server, &token, name, files, &[], shape);
        let answer = server.client.get(server.url(&format!("/fn/{name}"))).send().unwrap();
        assert_eq!(answer.status(), 500, "{name}");
        let text = answer.text().unwrap();
        assert!(text.contains(message), "{name}: {text}");
    }
    // An Express-style handler that never ends its response is stopped at the deadline.
    let hangs = [("index.js", "module.exports = (req, res) => { res.write('partial'); };\n")];
    let (status, deployed) =
        server.deploy(&token, "f-hang", archive(&hangs), &[("public", "true"), ("timeout_ms", "500")]);
    assert_eq!(status, 201, "{deployed}");
    let answer = server.client.get(server.url("/fn/f-hang")).send().unwrap();
    assert_eq!(answer.status(), 504, "a response never ended is a timeout, not a partial 200");
}
