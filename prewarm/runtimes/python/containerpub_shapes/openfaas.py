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

from containerpub_shapes.request import body_bytes, header_pairs, query_pairs


class Headers(dict):
    """Header names read in any case, like Flask's `request.headers`."""

    def __init__(self, pairs):
        super().__init__()
        self._original = {}
        for name, value in pairs:
            key = name.lower()
            super().__setitem__(key, f"{dict.get(self, key)}, {value}" if key in self else value)
            self._original.setdefault(key, name)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name, default=None):
        return super().get(name.lower(), default) if isinstance(name, str) else default

    def items(self):
        return [(self._original[key], value) for key, value in super().items()]


class Query(dict):
    """The query's arguments: the first value by `get`/`[]`, every value by `getlist`."""

    def __init__(self, pairs):
        super().__init__()
        self._all = {}
        for key, value in pairs:
            self._all.setdefault(key, []).append(value)
            self.setdefault(key, value)

    def getlist(self, key):
        return list(self._all.get(key, []))


class Event:
    def __init__(self, request):
        self.body = body_bytes(request)
        self.headers = Headers(header_pairs(request))
        self.method = request.get("method")
        self.query = Query(query_pairs(request))
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
