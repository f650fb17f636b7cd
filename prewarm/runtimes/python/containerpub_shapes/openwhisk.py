"""Shape `openwhisk`: Python actions written for Apache OpenWhisk (web actions).

Contract. `def main(args)`:
- `args`: the query's parameters, then the JSON body's (an object), merged; and OpenWhisk's
  web-action fields `__ow_method` (lower-case), `__ow_headers` (lower-case), `__ow_path` (below
  the function's URL), `__ow_query` and `__ow_body` (the raw body, base64 when not text).
- The result: a dict of only `statusCode`, `headers` and `body` is the answer; another dict is
  sent as JSON, as OpenWhisk sends a web action's result.
"""

import json

from containerpub_shapes.request import body_bytes, header_pairs, query_pairs


def params(request):
    headers = {}
    for name, value in header_pairs(request):
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    merged = dict(query_pairs(request))
    raw = body_bytes(request)
    if raw and "json" in headers.get("content-type", ""):
        try:
            body = json.loads(raw)
            if isinstance(body, dict):
                merged.update(body)
        except ValueError:
            pass
    path = request.get("path") or "/"
    merged.update({
        "__ow_method": (request.get("method") or "GET").lower(),
        "__ow_headers": headers,
        "__ow_path": "" if path == "/" else path,
        "__ow_query": request.get("raw_query") or "",
    })
    if raw:
        merged["__ow_body"] = request["body"] if request.get("body_is_base64") else raw.decode("utf-8", "replace")
    return merged


def invoke(loop, handler, frame):
    result = handler(params(frame.get("event") or {}))
    if isinstance(result, dict) and result and set(result) <= {"statusCode", "headers", "body"}:
        headers = dict(result.get("headers") or {})
        body = result.get("body", "")
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            headers.setdefault("content-type", "application/json")
        elif body and not any(name.lower() == "content-type" for name in headers):
            headers["content-type"] = "text/html; charset=utf-8"
        return {"statusCode": int(result.get("statusCode", 200)), "headers": headers, "body": "" if body is None else str(body)}
    return {} if result is None else result
