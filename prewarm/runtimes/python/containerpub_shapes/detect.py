"""Which calling convention a Python handler was written for, when the deploy did not say.

Not a shape: the rules that pick one, from the object loading found and how the code reads its
arguments. Each rule needs evidence only that convention leaves; without any, the handler keeps
this platform's own shape (`body`). `detect` returns `(shape, reason)`, the reason in words the
deploy's answer shows.
"""

import inspect
import re

LAMBDA_V1_FIELDS = ("httpMethod", "multiValueHeaders", "multiValueQueryStringParameters", "resource")
LAMBDA_FIELDS = ("queryStringParameters", "requestContext", "rawPath", "rawQueryString", "pathParameters",
                 "isBase64Encoded", "cookies", "stageVariables", "routeKey")
EVENT_FIELDS = ("body", "headers")


def positional_names(target):
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def reads_key(source, name, fields):
    """`NAME["field"]` or `NAME.get("field"` in the source, for one of `fields`."""
    if not name:
        return None
    pattern = rf"\b{re.escape(name)}\s*(?:\[\s*|\.get\(\s*)['\"]({'|'.join(fields)})['\"]"
    found = re.search(pattern, source)
    return found.group(0).replace(" ", "") + ("]" if "[" in found.group(0) else ")") if found else None


REQUEST_ATTRIBUTES = ("args", "get_json", "get_data", "form", "values", "is_json", "mimetype", "method", "cookies")


def reads_attribute(source, name, attributes):
    """`NAME.attribute` in the source, for one of `attributes`."""
    if not name:
        return None
    found = re.search(rf"\b{re.escape(name)}\s*\.\s*({'|'.join(attributes)})\b", source)
    return found.group(0).replace(" ", "") if found else None


def is_asgi(target):
    call = target if inspect.isfunction(target) or inspect.ismethod(target) else getattr(type(target), "__call__", None)
    if call is None:
        return False
    names = positional_names(target)
    return (inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(target)) and len(names) == 3


def is_wsgi(target):
    if hasattr(target, "wsgi_app"):
        return True
    names = positional_names(target)
    return len(names) == 2 and names[1] == "start_response"


def is_http_handler(target):
    try:
        from http.server import BaseHTTPRequestHandler
    except ImportError:
        return False
    return inspect.isclass(target) and issubclass(target, BaseHTTPRequestHandler)


def detect(target, name, source, entry):
    if is_http_handler(target):
        methods = sorted(m[3:] for m in dir(target) if m.startswith("do_"))
        return "http-handler", f"`{name}` is a BaseHTTPRequestHandler ({', '.join(methods)}): Vercel's Python functions"
    if is_asgi(target):
        kind = type(target).__name__ if not inspect.isfunction(target) else "a function"
        return "asgi", f"`{name}` is an ASGI application ({kind}: scope, receive, send)"
    if is_wsgi(target):
        kind = f"a {type(target).__name__} app" if hasattr(target, "wsgi_app") else "(environ, start_response)"
        return "wsgi", f"`{name}` is a WSGI application ({kind})"
    names = positional_names(target)
    first = names[0] if names else None
    if name == "new" and not names and entry.replace("\\", "/").endswith("func.py"):
        return "knative", "`new()` in func.py: a Knative function, whose instance's handle is ASGI"
    if len(names) == 1 and re.search(rf"\b{re.escape(first)}\s*\.\s*res\s*\.\s*(json|text|send|empty|binary|redirect)\s*\(", source):
        return "appwrite", f"it answers through {first}.res.…(): an Appwrite function"
    if name == "main" and len(names) == 1 and first in ("args", "params", "parameters", "dict"):
        return "openwhisk", f"`main({first})`: an OpenWhisk action (query and body as parameters)"
    if name == "main" and not names:
        return "fission", "`main()` with no argument: a Fission function"
    # OpenFaaS's templates put `handle` in handler.py; the parameter names are theirs too.
    in_handler_py = entry.replace("\\", "/").rsplit("/", 1)[-1] == "handler.py"
    if name == "handle" and names == ["event", "context"]:
        return "openfaas", "`handle(event, context)`: OpenFaaS's python3-http template"
    if name == "handle" and names == ["req"] and in_handler_py:
        return "openfaas", "`handle(req)` in handler.py: OpenFaaS's classic python3 and python3-flask templates (the body as text)"
    if len(names) == 1 and re.search(r"@\s*functions_framework\s*\.\s*http\b", source):
        return "flask-request", "registered with @functions_framework.http: Cloud Functions pass Flask's request"
    request_read = reads_attribute(source, first, REQUEST_ATTRIBUTES) if len(names) == 1 else None
    if request_read:
        return "flask-request", f"it reads {request_read}: a function of Flask's request (Cloud Functions' Python)"
    if len(names) == 1 and first == "request":
        return "flask-request", "it takes (request): Cloud Functions' Python passes Flask's request"
    v1 = reads_key(source, first, LAMBDA_V1_FIELDS)
    if v1 and len(names) == 2:
        return "lambda-v1", f"it reads {v1}: an API Gateway REST (payload 1.0) event"
    v2 = reads_key(source, first, LAMBDA_FIELDS)
    if v2 and len(names) == 2:
        return "lambda", f"it reads {v2}: a Lambda HTTP event (payload 2.0)"
    if name == "lambda_handler" and len(names) == 2:
        return "lambda", "`lambda_handler(event, context)`: Lambda's Python handler"
    event = reads_key(source, first, EVENT_FIELDS)
    if event and len(names) == 2 and re.fullmatch(r"event|evt|e|ev", first or ""):
        return "lambda", f"it reads {event}: a Lambda HTTP event (payload 2.0)"
    return "body", "no other platform's convention recognized: it gets the parsed body"
