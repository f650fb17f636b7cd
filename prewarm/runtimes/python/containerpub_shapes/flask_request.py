"""Shape `flask-request`: a function of Flask's `request`, as Google Cloud Functions calls Python.

Contract. `fn(request)`, registered with `@functions_framework.http` or named by the deploy:
- `request` reads like `flask.Request`: `method`, `path`, `full_path`, `url`, `host`, `args`
  (`get`, `getlist`, `in`), `headers` (any case), `cookies`, `data` and `get_data(as_text=)`,
  `get_json(silent=, force=)` and `json` (JSON content types, as Flask), `is_json`, `form`,
  `values`, `content_type`, `mimetype`, `remote_addr`, `query_string`.
- The result is an answer the way Flask's `make_response` reads one: a string (HTML, 200),
  bytes, a dict or list (JSON), `(body, status)`, `(body, headers)`, `(body, status, headers)`,
  or a response object with `status_code`, `headers` and `get_data()` (Flask's, Werkzeug's).
- `functions_framework` need not be uploaded: its `http` and `cloud_event` decorators are
  answered by the adapter, which records what they register.
"""

import json
from urllib.parse import parse_qsl

from containerpub_shapes.request import Headers, MultiDict, body_bytes, envelope, header_pairs, query_pairs


class Request:
    def __init__(self, request):
        self.method = request.get("method") or "GET"
        self.path = request.get("path") or "/"
        raw_query = request.get("raw_query") or ""
        self.query_string = raw_query.encode("latin-1", "replace")
        self.full_path = f"{self.path}?{raw_query}"
        self.args = MultiDict(query_pairs(request))
        self.headers = Headers(header_pairs(request))
        self.host = self.headers.get("host", "localhost")
        scheme = (self.headers.get("x-forwarded-proto") or "http").split(",")[0].strip()
        self.url = f"{scheme}://{self.host}{self.path}" + (f"?{raw_query}" if raw_query else "")
        self.base_url = f"{scheme}://{self.host}{self.path}"
        self.remote_addr = request.get("source_ip") or "127.0.0.1"
        self.data = body_bytes(request)
        self.content_type = self.headers.get("content-type")
        self.mimetype = (self.content_type or "").split(";")[0].strip().lower()
        self.is_json = self.mimetype == "application/json" or self.mimetype.endswith("+json")
        self.cookies = MultiDict(
            (part.split("=", 1)[0].strip(), part.split("=", 1)[1].strip())
            for part in (self.headers.get("cookie") or "").split(";") if "=" in part
        )
        form = self.data.decode("utf-8", "replace") if self.mimetype == "application/x-www-form-urlencoded" else ""
        self.form = MultiDict(parse_qsl(form, keep_blank_values=True))
        self.values = MultiDict(list(query_pairs(request)) + parse_qsl(form, keep_blank_values=True))
        self.environ = {"REQUEST_METHOD": self.method, "PATH_INFO": self.path, "QUERY_STRING": raw_query}

    def get_data(self, cache=True, as_text=False, parse_form_data=False):
        return self.data.decode("utf-8", "replace") if as_text else self.data

    def get_json(self, force=False, silent=False, cache=True):
        if not (force or self.is_json):
            if silent:
                return None
            raise ValueError(f"the request's content type is {self.content_type!r}, not JSON (Flask answers 415)")
        try:
            return json.loads(self.data or b"null")
        except ValueError:
            if silent:
                return None
            raise

    @property
    def json(self):
        return self.get_json(silent=True)


def answer(result):
    """An answer as Flask's `make_response` reads it."""
    status, headers = 200, []
    if isinstance(result, tuple):
        body, *rest = result
        for part in rest:
            if isinstance(part, int) or (isinstance(part, str) and part[:3].isdigit()):
                status = int(str(part)[:3])
            elif isinstance(part, dict):
                headers.extend(part.items())
            elif isinstance(part, list):
                headers.extend(part)
        result = body
    if hasattr(result, "status_code") and hasattr(result, "get_data"):
        pairs = list(getattr(result.headers, "items", lambda: [])())
        return envelope(result.status_code, pairs + headers, result.get_data())
    names = {str(name).lower() for name, _ in headers}
    if isinstance(result, (dict, list)):
        if "content-type" not in names:
            headers.append(("Content-Type", "application/json"))
        return envelope(status, headers, (json.dumps(result) + "\n").encode())
    if isinstance(result, (bytes, bytearray)):
        body = bytes(result)
    elif result is None:
        raise TypeError("the function returned None: return a string, a dict, or a (body, status) tuple (Flask refuses None too)")
    else:
        body = str(result).encode("utf-8")
    if "content-type" not in names:
        headers.append(("Content-Type", "text/html; charset=utf-8"))
    return envelope(status, headers, body)


def invoke(loop, handler, frame):
    return answer(handler(Request(frame.get("event") or {})))


class FunctionsFramework:
    """What `import functions_framework` gives a function here: the decorators, recording."""

    def __init__(self):
        self.registered = {}

    def http(self, function):
        self.registered[function.__name__] = function
        return function

    def cloud_event(self, function):
        self.registered[function.__name__] = function
        return function

    def errorhandler(self, *_args, **_kwargs):
        return lambda function: function
