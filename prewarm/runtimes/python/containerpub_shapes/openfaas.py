"""Shape `openfaas`: handlers written for OpenFaaS's Python templates.

Contract. python3-http's `handle(event, context)`:
- `event.body` is the raw body (bytes), `event.headers` the headers (read case-insensitively, as
  Flask's), `event.method`, `event.query` (the query's arguments: `.get(name)`, `.getlist(name)`),
  `event.path` (below the function's URL).
- `context.hostname` is the worker's host name.
- The result is the answer: a dict with `statusCode`, `body` (a dict is sent as JSON, anything
  else as text) and `headers`; `None` is an empty 200; any other value is its text with 200.
The classic python3 template's `handle(req)` (one parameter) gets the body as text and answers
with the text it returns.
"""

import json
import socket

from containerpub_shapes.request import Headers, MultiDict, body_bytes, header_pairs, query_pairs


class Event:
    def __init__(self, request):
        self.body = body_bytes(request)
        self.headers = Headers(header_pairs(request))
        self.method = request.get("method")
        self.query = MultiDict(query_pairs(request))
        self.path = request.get("path") or "/"


class Context:
    def __init__(self):
        self.hostname = socket.gethostname()


def answer(result):
    if result is None:
        return {"statusCode": 200, "body": ""}
    if not isinstance(result, dict):
        return {"statusCode": 200, "headers": {"content-type": "text/html; charset=utf-8"}, "body": str(result)}
    headers = {str(name): str(value) for name, value in (result.get("headers") or {}).items()}
    body = result.get("body", "")
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        if not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "application/json"
    elif isinstance(body, (bytes, bytearray)):
        import base64
        return {"statusCode": int(result.get("statusCode", 200)), "headers": headers,
                "body": base64.b64encode(bytes(body)).decode("ascii"), "isBase64Encoded": True}
    else:
        body = "" if body is None else str(body)
        if body and not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "text/html; charset=utf-8"
    return {"statusCode": int(result.get("statusCode", 200)), "headers": headers, "body": body}


def invoke(loop, handler, frame, positional):
    request = frame.get("event") or {}
    if positional < 2:
        # The classic template: the body as text in, text out.
        result = handler(body_bytes(request).decode("utf-8", "replace"))
        return {"statusCode": 200, "headers": {"content-type": "text/plain; charset=utf-8"},
                "body": "" if result is None else str(result)}
    return answer(handler(Event(request), Context()))
