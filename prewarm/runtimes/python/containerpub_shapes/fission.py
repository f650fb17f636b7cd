"""Shape `fission`: Python functions written for Fission's Python environment.

Contract. `def main():`, no argument (Fission's functions read Flask's `request` when they need
the request; here they are called outside any Flask app, so they must not). The result is an
answer the way Flask's `make_response` reads one: a string (HTML, 200), bytes, a dict or list
(JSON), or a `(body, status[, headers])` tuple.
"""

from containerpub_shapes.flask_request import answer


def invoke(loop, handler, frame):
    return answer(handler())
