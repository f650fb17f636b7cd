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


class MultiDict(dict):
    """The first value by `[]` and `get`, every value by `getlist`, as Werkzeug's (Flask's
    `request.args`, OpenFaaS's `event.query`)."""

    def __init__(self, pairs):
        super().__init__()
        self._all = {}
        for key, value in pairs:
            self._all.setdefault(key, []).append(value)
            self.setdefault(key, value)

    def getlist(self, key):
        return list(self._all.get(key, []))

    def to_dict(self, flat=True):
        return dict(self) if flat else {key: list(values) for key, values in self._all.items()}


class Headers(dict):
    """Header names read in any case, repeats joined with `, `; `items()` gives them as sent."""

    def __init__(self, pairs):
        super().__init__()
        self._pairs = list(pairs)
        for name, value in self._pairs:
            key = name.lower()
            super().__setitem__(key, f"{dict.get(self, key)}, {value}" if key in self else value)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return isinstance(name, str) and super().__contains__(name.lower())

    def get(self, name, default=None, type=None):
        value = super().get(name.lower(), default) if isinstance(name, str) else default
        return type(value) if type is not None and value is not None else value

    def items(self):
        return list(self._pairs)


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
