"""Shape `asgi`: a Python ASGI application (FastAPI, Starlette, Quart, Django's asgi).

Contract. The application is called as `await app(scope, receive, send)` once per request on the
worker's event loop:
- `scope` is an HTTP scope (ASGI 3.0, spec 2.3): `method`, `path` (below the function's URL),
  `raw_path`, `query_string`, `headers` (lower-case byte pairs, as sent), `root_path` (`""`),
  `scheme`, `server`, `client`.
- `receive()` gives the body as one `http.request` message, then `http.disconnect`.
- The answer is the `http.response.start` status and headers and every `http.response.body`
  chunk until `more_body` is false. An exception before the start is the call's error (500).
The lifespan protocol runs once when the worker loads (`startup`); an app without it is served
all the same.
"""

import asyncio

from containerpub_shapes.request import body_bytes, envelope, header_pairs


def scope_for(request):
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1", "replace")) for name, value in header_pairs(request)]
    host = next((value.decode("latin-1") for name, value in headers if name == b"host"), "localhost")
    server, _, port = host.partition(":")
    scheme = next((value.decode("latin-1").split(",")[0].strip() for name, value in headers if name == b"x-forwarded-proto"), "http")
    path = request.get("path") or "/"
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": request.get("method") or "GET",
        "scheme": scheme,
        "path": path,
        "raw_path": path.encode("utf-8"),
        "query_string": (request.get("raw_query") or "").encode("latin-1"),
        "root_path": "",
        "headers": headers,
        "server": (server, int(port) if port.isdigit() else (443 if scheme == "https" else 80)),
        "client": (request.get("source_ip") or "127.0.0.1", 0),
        "state": {},
    }


async def serve(app, request):
    body = body_bytes(request)
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answer = {"status": None, "headers": [], "chunks": [], "done": False}

    async def receive():
        if messages:
            return messages.pop(0)
        # The whole body was given: the client is gone once the answer is.
        while not answer["done"]:
            await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def send(message):
        kind = message.get("type")
        if kind == "http.response.start":
            answer["status"] = int(message["status"])
            answer["headers"] = [(bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
                                 for name, value in message.get("headers", [])]
        elif kind == "http.response.body":
            answer["chunks"].append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                answer["done"] = True

    await app(scope_for(request), receive, send)
    if answer["status"] is None:
        raise RuntimeError("the ASGI application returned without starting a response")
    body = b"" if request.get("method") == "HEAD" else b"".join(answer["chunks"])
    return envelope(answer["status"], answer["headers"], body)


async def lifespan_startup(app):
    """Runs the app's startup handlers; an app without the lifespan protocol raises or answers
    `startup.failed`, and is served all the same."""
    sent = []
    queue = [{"type": "lifespan.startup"}]
    started = asyncio.Event()

    async def receive():
        if queue:
            return queue.pop(0)
        await asyncio.Event().wait()

    async def send(message):
        sent.append(message)
        if message.get("type", "").startswith("lifespan.startup"):
            started.set()

    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send))
    done, _ = await asyncio.wait([task, asyncio.ensure_future(started.wait())], return_when=asyncio.FIRST_COMPLETED, timeout=30)
    if task in done and task.exception() is not None:
        return None
    failed = [message for message in sent if message.get("type") == "lifespan.startup.failed"]
    if failed:
        raise RuntimeError(f"the app's startup failed: {failed[0].get('message', '')}")
    return task


def invoke(loop, app, frame):
    return loop.run_until_complete(serve(app, frame.get("event") or {}))
