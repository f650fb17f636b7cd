"""Shapes `lambda` and `lambda-v1`: handlers written for AWS Lambda.

Contract. `handler(event, context)`, a `def` or an `async def`:
- `event` is what Lambda would pass for this HTTP request. Behind a function URL or an HTTP API
  (payload format 2.0, shape `lambda`): `rawPath` (the path below the function's URL: `/fn/NAME/a/b`
  gives `/a/b`), `rawQueryString`, `queryStringParameters` (repeats joined by commas), `cookies`,
  `headers` (lower-case, repeats joined by commas), `requestContext["http"]`, `body`,
  `isBase64Encoded`. Behind an API Gateway REST API (payload 1.0, shape `lambda-v1`): `httpMethod`,
  `path`, `headers` in the case they were sent, `multiValueHeaders`, `queryStringParameters`,
  `multiValueQueryStringParameters`, `pathParameters["proxy"]`, `requestContext`, `body`,
  `isBase64Encoded`.
- `context` is a Lambda context: `aws_request_id` (the invocation id), `function_name`,
  `function_version`, `memory_limit_in_mb`, `invoked_function_arn`, `log_group_name`,
  `log_stream_name`, `get_remaining_time_in_millis()`.
- The result is the answer: `{statusCode, headers, multiValueHeaders, cookies, body,
  isBase64Encoded}` as Lambda reads it; a string is the body of a 200 JSON answer and any other
  value is sent as JSON with 200, as a function URL does. An exception is the call's error (500).
"""

import inspect
import os
import time

from containerpub_shapes.request import body_bytes, header_pairs, query_pairs  # noqa: F401

MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def request_time(epoch):
    moment = time.gmtime(epoch)
    return (f"{moment.tm_mday:02d}/{MONTHS[moment.tm_mon - 1]}/{moment.tm_year}:"
            f"{moment.tm_hour:02d}:{moment.tm_min:02d}:{moment.tm_sec:02d} +0000")


def event_v2(request, frame, now):
    headers = {}
    cookies = []
    for name, value in header_pairs(request):
        lower = name.lower()
        if lower == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
            continue
        headers[lower] = f"{headers[lower]},{value}" if lower in headers else value
    query = {}
    for key, value in query_pairs(request):
        query[key] = f"{query[key]},{value}" if key in query else value
    host = headers.get("host", "localhost")
    path = request.get("path") or "/"
    event = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": request.get("raw_query") or "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": os.environ.get("FUNCTION_NAME", ""),
            "domainName": host,
            "domainPrefix": host.split(".")[0],
            "http": {
                "method": request.get("method"),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": request.get("source_ip") or "",
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": frame.get("id"),
            "routeKey": "$default",
            "stage": "$default",
            "time": request_time(now),
            "timeEpoch": int(now * 1000),
        },
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if request.get("body") is not None:
        event["body"] = request["body"]
    event["isBase64Encoded"] = bool(request.get("body_is_base64"))
    return event


def event_v1(request, frame, now):
    headers = {}
    multi_headers = {}
    for name, value in header_pairs(request):
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query = {}
    multi_query = {}
    for key, value in query_pairs(request):
        query[key] = value
        multi_query.setdefault(key, []).append(value)
    path = request.get("path") or "/"
    lower = {name.lower(): value for name, value in headers.items()}
    return {
        "version": "1.0",
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": request.get("method"),
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": os.environ.get("FUNCTION_NAME", ""),
            "domainName": lower.get("host", "localhost"),
            "httpMethod": request.get("method"),
            "path": path,
            "protocol": "HTTP/1.1",
            "requestId": frame.get("id"),
            "requestTime": request_time(now),
            "requestTimeEpoch": int(now * 1000),
            "resourcePath": "/{proxy+}",
            "stage": "$default",
            "identity": {"sourceIp": request.get("source_ip") or "", "userAgent": lower.get("user-agent", "")},
        },
        "pathParameters": None if path == "/" else {"proxy": path[1:]},
        "stageVariables": None,
        "body": request.get("body"),
        "isBase64Encoded": bool(request.get("body_is_base64")),
    }


class LambdaContext:
    """What Lambda's Python runtime passes as `context`."""

    def __init__(self, frame, received_at):
        name = os.environ.get("FUNCTION_NAME", "function")
        self.function_name = name
        self.function_version = os.environ.get("FUNCTION_VERSION", "$LATEST")
        self.invoked_function_arn = f"arn:aws:lambda:local:000000000000:function:{name}"
        self.memory_limit_in_mb = os.environ.get("FUNCTION_MAX_MEMORY_MB", "")
        self.aws_request_id = frame.get("id")
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = f"containerpub/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline = received_at + float(frame.get("deadline_ms") or 0) / 1000

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def as_answer(result):
    """What Lambda does with a result that is not a `{statusCode}` envelope."""
    if isinstance(result, str):
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": result}
    return result


def invoke(loop, handler, frame, shape):
    received_at = time.monotonic()
    request = frame.get("event") or {}
    now = time.time()
    event = event_v1(request, frame, now) if shape == "lambda-v1" else event_v2(request, frame, now)
    result = handler(event, LambdaContext(frame, received_at))
    if inspect.isawaitable(result):
        result = loop.run_until_complete(result)
    return as_answer(result)
