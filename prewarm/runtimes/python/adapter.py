"""ContainerPub warm-worker adapter for Python functions. See prewarm/PROTOCOL.md.

Loads the function once (`main.py` defining `handler`, `def` or `async def`), writes a `ready`
frame, then serves one request at a time: read a frame on fd 3, call the handler, write the reply
on fd 4. stdout and stderr belong to the function: they are log pipes, never frames.
"""

import asyncio
import importlib.util
import inspect
import json
import os
import struct
import sys
import traceback

REQUEST_FD = int(os.environ.get("CONTAINERPUB_REQUEST_FD", "3"))
RESPONSE_FD = int(os.environ.get("CONTAINERPUB_RESPONSE_FD", "4"))


def read_exactly(count):
    data = bytearray()
    while len(data) < count:
        chunk = os.read(REQUEST_FD, count - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def write_frame(message):
    payload = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    data = memoryview(struct.pack(">I", len(payload)) + payload)
    while data:
        written = os.write(RESPONSE_FD, data)
        data = data[written:]


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


def request_object(event):
    return {
        "method": event.get("method"),
        "path": event.get("path"),
        "query": event.get("query") or {},
        "headers": event.get("headers") or {},
        "body": event.get("body"),
        "isBase64Encoded": bool(event.get("body_is_base64")),
    }


def load(entry):
    directory = os.path.dirname(os.path.abspath(entry))
    sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location("main", entry)
    module = importlib.util.module_from_spec(spec)
    sys.modules["main"] = module
    spec.loader.exec_module(module)
    handler = getattr(module, "handler", None)
    if not callable(handler):
        raise TypeError(f"{entry} does not define a function named handler")
    try:
        positional = [
            p for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
        ]
        wants_request = len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in positional)
    except (TypeError, ValueError):
        wants_request = False
    return handler, wants_request


def invoke(loop, handler, wants_request, frame):
    event = frame.get("event") or {}
    try:
        args = (handler_body(event), request_object(event)) if wants_request else (handler_body(event),)
        result = handler(*args)
        if inspect.isawaitable(result):
            result = loop.run_until_complete(result)
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as error:
            return {"type": "response", "id": frame["id"], "ok": False, "error": {
                "type": "TypeError",
                "message": f"the handler's result is not JSON-serializable: {error}"}}
        return {"type": "response", "id": frame["id"], "ok": True, "result": result}
    except BaseException as error:  # the function's failure is reported, never fatal to the worker
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return {"type": "response", "id": frame["id"], "ok": False, "error": describe_error(error)}


def flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass


def main():
    entry = sys.argv[1]
    try:
        handler, wants_request = load(entry)
    except BaseException as error:
        flush_output()
        write_frame({"type": "load_error", "error": describe_error(error)})
        sys.exit(1)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    flush_output()
    write_frame({"type": "ready", "runtime": "python"})
    while True:
        header = read_exactly(4)
        if header is None:
            return
        (length,) = struct.unpack(">I", header)
        payload = read_exactly(length)
        if payload is None:
            return
        reply = invoke(loop, handler, wants_request, json.loads(payload))
        # Everything the function printed must reach the log pipes before its reply is seen.
        flush_output()
        write_frame(reply)


if __name__ == "__main__":
    main()
