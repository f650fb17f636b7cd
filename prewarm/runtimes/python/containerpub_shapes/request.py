"""The request of an invocation frame (PROTOCOL.md's `event`), read the ways the shapes need it.

Not a shape: the helpers every other-platform shape shares.
"""

import base64
from urllib.parse import parse_qsl


def header_pairs(request):
    """The headers as sent: original case, one pair per occurrence. A frame without the list (an
    API call) has only the folded, lower-case map."""
    listed = request.get("header_list")
    if listed:
        return [(name, value) for name, value in listed]
    return list((request.get("headers") or {}).items())


def query_pairs(request):
    """Query pairs, decoded, repeats kept, in order."""
    raw = request.get("raw_query")
    if raw:
        return parse_qsl(raw, keep_blank_values=True)
    return list((request.get("query") or {}).items())


def body_bytes(request):
    body = request.get("body")
    if body is None:
        return b""
    if request.get("body_is_base64"):
        return base64.b64decode(body)
    return body.encode("utf-8")


def envelope(status, headers, body):
    """The reply frame's result for an answer given as status, header pairs and bytes: an envelope
    the platform reads (prewarm/src/envelope.rs), the body in base64 so any bytes travel."""
    multi = {}
    for name, value in headers:
        multi.setdefault(str(name).lower(), []).append(str(value))
    return {
        "statusCode": int(status),
        "multiValueHeaders": multi,
        "body": base64.b64encode(bytes(body)).decode("ascii"),
        "isBase64Encoded": True,
    }
