"""Shape `appwrite`: Python functions written for Appwrite.

Contract. `def main(context)`, a `def` or an `async def`:
- `context.req`: `method`, `path` (below the function's URL), `query` (a dict), `query_string`,
  `headers` (lower-case), `host`, `scheme`, `port`, `url`, `body_text`, `body_json` (parsed; it
  raises on text that is not JSON), `body_binary`, `body` (by content type).
- `context.res`: `text(body, status, headers)`, `json(value, status, headers)`,
  `binary(bytes, status, headers)`, `empty()`, `redirect(url, status=301, headers)`,
  `send(body, status, headers)`; each makes the answer the function returns.
- `context.log(…)`, `context.error(…)`: lines of the function's log (stdout and stderr).
A function that returns anything else gets a 500 that says so, as Appwrite answers.
"""

import inspect
import json
import sys
from types import SimpleNamespace

from containerpub_shapes.request import body_bytes, envelope, header_pairs, query_pairs


class Answer:
    def __init__(self, body, status, headers, kind):
        self.body = body
        self.status = status or 200
        self.headers = list((headers or {}).items())
        if kind and not any(name.lower() == "content-type" for name, _ in self.headers):
            self.headers.append(("content-type", kind))


class Response:
    def text(self, body, status=200, headers=None):
        return Answer(str(body).encode(), status, headers, "text/plain; charset=utf-8")

    send = text

    def json(self, value, status=200, headers=None):
        return Answer(json.dumps(value).encode(), status, headers, "application/json")

    def binary(self, data, status=200, headers=None):
        return Answer(bytes(data), status, headers, "application/octet-stream")

    def empty(self):
        return Answer(b"", 204, None, None)

    def redirect(self, url, status=301, headers=None):
        return Answer(b"", status, {**(headers or {}), "location": url}, None)


class Request:
    def __init__(self, request):
        self.method = request.get("method")
        self.path = request.get("path") or "/"
        self.query = dict(query_pairs(request))
        self.query_string = request.get("raw_query") or ""
        self.headers = {}
        for name, value in header_pairs(request):
            key = name.lower()
            self.headers[key] = f"{self.headers[key]}, {value}" if key in self.headers else value
        host = self.headers.get("host", "localhost")
        self.scheme = self.headers.get("x-forwarded-proto", "http").split(",")[0].strip()
        self.host = host.split(":")[0]
        self.port = int(host.split(":")[1]) if ":" in host and host.split(":")[1].isdigit() else (443 if self.scheme == "https" else 80)
        self.url = f"{self.scheme}://{host}{self.path}" + (f"?{self.query_string}" if self.query_string else "")
        self.body_binary = body_bytes(request)
        self.body_text = self.body_binary.decode("utf-8", "replace")
        self.body_raw = self.body_text

    @property
    def body_json(self):
        return json.loads(self.body_text or "{}")

    @property
    def body(self):
        if self.headers.get("content-type", "").startswith("application/json"):
            try:
                return json.loads(self.body_text or "{}")
            except ValueError:
                return self.body_text
        return self.body_text


def invoke(loop, handler, frame):
    context = SimpleNamespace(
        req=Request(frame.get("event") or {}),
        res=Response(),
        log=lambda *parts: print(*parts),
        error=lambda *parts: print(*parts, file=sys.stderr),
    )
    result = handler(context)
    if inspect.isawaitable(result):
        result = loop.run_until_complete(result)
    if not isinstance(result, Answer):
        raise TypeError("the function returned no answer: return context.res.text(…), .json(…), .binary(…), .empty() or .redirect(…), as Appwrite expects")
    return envelope(result.status, result.headers, result.body)
