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
