"""Shape `wsgi`: a Python WSGI application (PEP 3333: Flask, Django, Bottle, Falcon).

Contract. The application is called as `app(environ, start_response)` once per request:
- `environ` has `REQUEST_METHOD`, `SCRIPT_NAME` (`""`), `PATH_INFO` (the path below the function's
  URL, so the app's routes are its own), `QUERY_STRING`, `CONTENT_TYPE`, `CONTENT_LENGTH`, every
  other header as `HTTP_*`, `SERVER_NAME`/`SERVER_PORT` from `Host`, `REMOTE_ADDR`,
  `wsgi.input` (the body), `wsgi.errors` (the log), `wsgi.url_scheme`; not multithreaded, not
  multiprocess, not run once.
- The answer is the status and headers passed to `start_response` and the bytes of the iterable
  it returns (its `close()` is called). An exception is the call's error (500).
"""

import io
import sys

from containerpub_shapes.request import body_bytes, envelope, header_pairs


def environ_for(request):
    body = body_bytes(request)
    host = "localhost"
    environ = {
        "REQUEST_METHOD": request.get("method") or "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": request.get("path") or "/",
        "QUERY_STRING": request.get("raw_query") or "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": request.get("source_ip") or "127.0.0.1",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.version": (1, 0),
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    scheme = "http"
    for name, value in header_pairs(request):
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if key == "CONTENT_LENGTH":
            continue
        if key == "HOST":
            host = value
        if key == "X_FORWARDED_PROTO":
            scheme = value.split(",")[0].strip() or scheme
        key = f"HTTP_{key}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    environ["wsgi.url_scheme"] = scheme
    server, _, port = host.partition(":")
    environ["SERVER_NAME"] = server
    environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
    return environ


def invoke(loop, app, frame):
    request = frame.get("event") or {}
    started = {}

    def start_response(status, headers, exc_info=None):
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started["status"] = int(str(status).split(" ", 1)[0])
        started["headers"] = list(headers)
        return chunks.append

    chunks = []
    result = app(environ_for(request), start_response)
    try:
        for chunk in result:
            if chunk:
                chunks.append(chunk)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    if "status" not in started:
        raise RuntimeError("the WSGI application returned without calling start_response")
    body = b"" if request.get("method") == "HEAD" else b"".join(chunks)
    return envelope(started["status"], started["headers"], body)
