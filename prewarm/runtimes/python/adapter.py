"""ContainerPub warm-worker adapter for Python functions. See prewarm/PROTOCOL.md.

Usage: python3 adapter.py ENTRY [FUNCTION [SHAPE]]. Loads the entry once, finds the function to
call (any callable: `def`, `async def`, a lambda, a callable object, a WSGI or ASGI app), settles
the shape it was written for (told, or `auto`: detected, see containerpub_shapes/detect.py), writes
a `ready` frame, then serves one request at a time: read a frame on fd 3, call the function in its
shape (this file holds the platform's own, `body`; containerpub_shapes/ one module per other
platform's), write the reply on fd 4. A module that
loads with nothing callable under that name is a script: it gets a `no_handler` frame and the
platform runs it one process per call instead. stdout and stderr belong to the function: they are
log pipes, never frames.
"""

import asyncio
import importlib.util
import inspect
import json
import os
import struct
import sys
import time
import traceback

REQUEST_FD = int(os.environ.get("CONTAINERPUB_REQUEST_FD", "3"))
RESPONSE_FD = int(os.environ.get("CONTAINERPUB_RESPONSE_FD", "4"))


class Requests:
    """Frames from the request pipe, read in large chunks: one `read` usually brings a whole frame
    (header and payload), instead of one for the header and one for the payload."""

    def __init__(self, fd):
        self.fd = fd
        self.buffer = bytearray()

    def next_frame(self):
        """The next frame's payload, or None at end of file."""
        while True:
            if len(self.buffer) >= 4:
                (length,) = struct.unpack_from(">I", self.buffer)
                if len(self.buffer) >= 4 + length:
                    payload = bytes(self.buffer[4:4 + length])
                    del self.buffer[:4 + length]
                    return payload
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buffer += chunk


def encode(message):
    return json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")


def write_encoded(payload):
    data = memoryview(struct.pack(">I", len(payload)) + payload)
    while data:
        written = os.write(RESPONSE_FD, data)
        data = data[written:]


def write_frame(message):
    write_encoded(encode(message))


def describe_error(error):
    described = {
        "type": type(error).__name__,
        "message": str(error),
        "stack": "".join(traceback.format_exception(type(error), error, error.__traceback__)),
    }
    if isinstance(error, MemoryError):
        described["kind"] = "out_of_memory"
    return described


def handler_body(event):
    body = event.get("body")
    if body is None or body == "":
        return {}
    if event.get("body_is_base64"):
        return body
    try:
        return json.loads(body)
    except ValueError:
        return body


class Context(dict):
    """The second argument: the request as received (`context["path"]`, as before) plus what a
    Lambda context carries that means something here, read as keys or attributes."""

    def __init__(self, frame, received_at):
        event = frame.get("event") or {}
        super().__init__(
            method=event.get("method"),
            path=event.get("path"),
            query=event.get("query") or {},
            headers=event.get("headers") or {},
            body=event.get("body"),
            isBase64Encoded=bool(event.get("body_is_base64")),
            invocation_id=frame.get("id"),
            function_name=os.environ.get("FUNCTION_NAME"),
            function_version=os.environ.get("FUNCTION_VERSION"),
            memory_limit_in_mb=int(os.environ.get("FUNCTION_MAX_MEMORY_MB") or 0),
        )
        # `deadline_ms` is the invocation's budget, counted from the frame's arrival.
        self._deadline = received_at + float(frame.get("deadline_ms") or 0) / 1000

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class NoHandler(Exception):
    """The module loaded, with nothing callable under the function's name."""

    def __init__(self, message, callables=()):
        super().__init__(message)
        self.callables = list(callables)


def module_callables(module):
    return sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_") and callable(value) and getattr(value, "__module__", None) == module.__name__
    )


def describe_callables(module):
    names = module_callables(module)
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return f"its functions: {', '.join(names[:10])}{more}" if names else "it defines no functions"


def entry_hint(shown, callables):
    """The deploy option that serves a function under another name: `--entry FILE:NAME`."""
    if len(callables) == 1:
        return f"; to serve `{callables[0]}` warm, deploy with --entry {shown}:{callables[0]}"
    if callables:
        return f"; to serve one of them warm, deploy with --entry {shown}:NAME ({', '.join(callables[:5])})"
    return ""


def only_function(module):
    """What to serve when the default name is not there: the module's `app` (a WSGI or ASGI app),
    else its only function: `(callable, name)`, or `(None, "handler")` when there are none or
    several."""
    apps = [n for n in ("app", "application") if callable(getattr(module, n, None))]
    if len(apps) == 1:
        return getattr(module, apps[0]), apps[0]
    names = module_callables(module)
    if len(names) == 1:
        return getattr(module, names[0]), names[0]
    return None, "handler"


def intercept_functions_framework(source):
    """Cloud Functions' `@functions_framework.http` registers what it decorates: the framework's
    module is answered with one that records it, whether or not the package was uploaded.
    Installed only when the source names it. Returns the record, or None."""
    if "functions_framework" not in source:
        return None
    import types
    from containerpub_shapes.flask_request import FunctionsFramework
    framework = FunctionsFramework()
    module = types.ModuleType("functions_framework")
    module.http, module.cloud_event, module.errorhandler = framework.http, framework.cloud_event, framework.errorhandler
    sys.modules["functions_framework"] = module
    return framework


def load(entry, name, source):
    # Imports resolve from the entry's directory and from the function's root (the cwd).
    directory = os.path.dirname(os.path.abspath(entry))
    for root in (os.getcwd(), directory):
        if root not in sys.path:
            sys.path.insert(0, root)
    framework = intercept_functions_framework(source)
    module_name = os.path.splitext(os.path.basename(entry))[0]
    spec = importlib.util.spec_from_file_location(module_name, entry)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except SystemExit as exit:
        # A script that ends itself with exit(0) while loading has no function to serve.
        if exit.code in (None, 0):
            raise NoHandler(f"it exited while loading ({describe_callables(module)})") from None
        raise
    handler = getattr(module, name, None)
    only = ""
    if handler is None and name == "handler" and framework and len(framework.registered) == 1:
        name, handler = next(iter(framework.registered.items()))
        only = ", the only function registered with @functions_framework.http"
    if handler is None and name == "handler":
        handler, name = only_function(module)
        only = ", the only one it defines" if handler is not None else ""
    if not callable(handler):
        found = "" if handler is None else f", `{name}` is a {type(handler).__name__}"
        raise NoHandler(f"{describe_callables(module)}{found}", module_callables(module))
    if inspect.iscoroutinefunction(handler):
        kind = "an async function"
    elif getattr(handler, "__name__", None) == "<lambda>":
        kind = "a lambda"
    elif inspect.isfunction(handler):
        kind = "a function"
    else:
        kind = f"a callable {type(handler).__name__}"
    where = f"`{name}`, {kind}{only}"
    try:
        positional = [
            p for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        wants_request = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)
    except (TypeError, ValueError):
        positional = []
        wants_request = False
    return handler, wants_request, where, len(positional)


def invoke_body(loop, handler, wants_request, frame):
    """The platform's own shape, `body`: `handler(body[, context])`."""
    received_at = time.monotonic()
    event = frame.get("event") or {}
    args = (handler_body(event), Context(frame, received_at)) if wants_request else (handler_body(event),)
    result = handler(*args)
    if inspect.isawaitable(result):
        result = loop.run_until_complete(result)
    return result


SHAPES = ("body", "lambda", "lambda-v1", "openfaas", "flask-request", "http-handler", "wsgi", "asgi", "knative",
          "appwrite", "fission", "openwhisk")


def caller(loop, shape, handler, wants_request, positional):
    """The call of one request in `shape`."""
    if shape == "body":
        return lambda frame: invoke_body(loop, handler, wants_request, frame)
    if shape in ("lambda", "lambda-v1"):
        from containerpub_shapes import lambda_event
        return lambda frame: lambda_event.invoke(loop, handler, frame, shape)
    if shape == "openfaas":
        from containerpub_shapes import openfaas
        return lambda frame: openfaas.invoke(loop, handler, frame, positional)
    if shape == "flask-request":
        from containerpub_shapes import flask_request
        return lambda frame: flask_request.invoke(loop, handler, frame)
    if shape in ("appwrite", "fission", "openwhisk"):
        module = importlib.import_module(f"containerpub_shapes.{shape}")
        return lambda frame: module.invoke(loop, handler, frame)
    if shape == "knative":
        # Knative's `new()` makes the function's instance; its `handle` is an ASGI application.
        from containerpub_shapes import asgi
        instance = handler()
        start = getattr(instance, "start", None)
        if callable(start):
            start(dict(os.environ))
        return lambda frame: asgi.invoke(loop, instance.handle, frame)
    if shape == "http-handler":
        from containerpub_shapes import http_handler
        return lambda frame: http_handler.invoke(loop, handler, frame)
    if shape == "wsgi":
        from containerpub_shapes import wsgi
        return lambda frame: wsgi.invoke(loop, handler, frame)
    from containerpub_shapes import asgi
    loop.run_until_complete(asgi.lifespan_startup(handler))
    return lambda frame: asgi.invoke(loop, handler, frame)


def invoke(call, frame):
    """Runs one request; returns the reply frame, encoded once (encoding is also the check that
    the result is JSON)."""
    try:
        result = call(frame)
        try:
            return encode({"type": "response", "id": frame["id"], "ok": True, "result": result})
        except (TypeError, ValueError) as error:
            # `kind: invalid_output`: the platform answers 502 invalid_output (PROTOCOL.md).
            return encode({"type": "response", "id": frame["id"], "ok": False, "error": {
                "type": "TypeError",
                "message": f"the handler's result is not JSON-serializable: {error}",
                "kind": "invalid_output"}})
    except BaseException as error:  # the function's failure is reported, never fatal to the worker
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return encode({"type": "response", "id": frame["id"], "ok": False, "error": describe_error(error)})


def flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def main():
    entry = sys.argv[1]
    name = sys.argv[2] if len(sys.argv) > 2 else "handler"
    shown = os.path.relpath(entry) if os.path.isabs(entry) else entry
    told = sys.argv[3] if len(sys.argv) > 3 else "body"
    try:
        with open(entry, encoding="utf-8", errors="replace") as file:
            source = file.read()
        handler, wants_request, where, positional = load(entry, name, source)
        served = where.split("`")[1] if where.count("`") >= 2 else name
        shape, reason = told, None
        if told == "auto":
            from containerpub_shapes.detect import detect
            shape, reason = detect(handler, served, source, shown)
        if shape not in SHAPES:
            raise TypeError(f"a Python function's shape is one of {', '.join(SHAPES)}, not {shape!r}")
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        call = caller(loop, shape, handler, wants_request, positional)
    except NoHandler as missing:
        flush_output()
        hint = entry_hint(shown, missing.callables)
        write_frame({"type": "no_handler", "message": f"{shown} loaded without a callable `{name}` ({missing}){hint}"})
        sys.exit(0)
    except BaseException as error:
        flush_output()
        write_frame({"type": "load_error", "error": describe_error(error)})
        sys.exit(1)
    flush_output()
    write_frame({"type": "ready", "runtime": "python", "handler": where, "shape": shape, "shape_reason": reason})
    requests = Requests(REQUEST_FD)
    while True:
        payload = requests.next_frame()
        if payload is None:
            return
        reply = invoke(call, json.loads(payload))
        # Everything the function printed must reach the log pipes before its reply is seen.
        flush_output()
        write_encoded(reply)


if __name__ == "__main__":
    main()
