"""Shape `http-handler`: a `BaseHTTPRequestHandler` subclass, as Vercel's Python runtime serves one.

Contract. `class handler(BaseHTTPRequestHandler)` with `do_GET`, `do_POST`…: each request makes
one instance that reads the request as a server would hand it over (`self.path` is the path
below the function's URL with the query, `self.headers`, `self.rfile` with the body,
`self.client_address`) and writes its answer with `send_response`, `send_header`,
`end_headers` and `self.wfile`. The answer is what it wrote; a method it lacks is answered 501,
as `http.server` answers. No socket is opened: the request is read from, and the answer written
to, memory.
"""

import io

from containerpub_shapes.request import body_bytes, envelope, header_pairs


class Server:
    """What a handler may read of its server."""

    server_name = "containerpub"
    server_port = 80


def raw_request(request):
    body = body_bytes(request)
    target = (request.get("path") or "/") + (f"?{request['raw_query']}" if request.get("raw_query") else "")
    lines = [f"{request.get('method') or 'GET'} {target} HTTP/1.1"]
    for name, value in header_pairs(request):
        if name.lower() not in ("content-length", "transfer-encoding", "connection"):
            lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body


def parse_answer(written):
    head, _, body = written.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines and len(lines[0].split(" ")) > 1 else 502
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() not in ("server", "date", "connection", "content-length", "transfer-encoding"):
            headers.append((name.strip(), value.strip()))
    return status, headers, body


def invoke(loop, handler_class, frame):
    request = frame.get("event") or {}
    handler = handler_class.__new__(handler_class)
    handler.rfile = io.BytesIO(raw_request(request))
    handler.wfile = io.BytesIO()
    handler.client_address = (request.get("source_ip") or "127.0.0.1", 0)
    handler.server = Server()
    handler.request = None
    handler.close_connection = True
    # Its own log lines go to stderr, as http.server's do.
    handler.handle_one_request()
    handler.wfile.flush()
    written = handler.wfile.getvalue()
    if not written:
        raise RuntimeError(f"{handler_class.__name__} wrote no answer to {request.get('method')} {request.get('path')}")
    status, headers, body = parse_answer(written)
    return envelope(status, headers, body)
