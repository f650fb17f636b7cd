"""An HTTP function (the seed's http-function): fetches a URL with a timeout and reports what came
back, or why nothing did. Call it with {"url": "https://…"} (or ?url=…), and optionally
{"timeout_ms": 1500}.

The timeout stays inside the platform's deadline: the function answers 504 itself, with a
message, instead of being stopped by the platform. Only the standard library: nothing to vendor.
"""
import socket
import sys
import time
import urllib.error
import urllib.request

DEFAULT_TIMEOUT_MS = 2000
MARGIN_MS = 200  # time kept to build the answer once the upstream gave up


def handler(body, context):
    data = body if isinstance(body, dict) else {}
    url = data.get("url") or context["query"].get("url")
    if not url or not url.startswith(("http://", "https://")):
        return {"statusCode": 400, "body": {"success": False, "error": 'send {"url": "http://…" or "https://…"}'}}
    asked = int(data.get("timeout_ms") or DEFAULT_TIMEOUT_MS)
    timeout_ms = max(1, min(asked, context.get_remaining_time_in_millis() - MARGIN_MS))
    started = time.monotonic()
    try:
        # The timeout bounds connecting and each read; the deadline below bounds the whole.
        with urllib.request.urlopen(url, timeout=timeout_ms / 1000) as response:
            length = len(response.read())
            return {
                "success": True,
                "url": url,
                "status": response.status,
                "contentType": response.headers.get("content-type"),
                "bodyLength": length,
                "elapsedMs": int((time.monotonic() - started) * 1000),
            }
    except urllib.error.HTTPError as error:
        # An answer, even a 404 or a 500, is a success of the call: report its status.
        return {"success": True, "url": url, "status": error.code, "contentType": error.headers.get("content-type"),
                "bodyLength": len(error.read()), "elapsedMs": int((time.monotonic() - started) * 1000)}
    except (TimeoutError, socket.timeout) as error:
        return timed_out(url, timeout_ms, error)
    except urllib.error.URLError as error:
        if isinstance(error.reason, (TimeoutError, socket.timeout)):
            return timed_out(url, timeout_ms, error)
        print(f"request failed: {url}: {error.reason}", file=sys.stderr)
        return {"statusCode": 502, "body": {"success": False, "error": "unreachable", "message": f"{url}: {error.reason}"}}


def timed_out(url, timeout_ms, error):
    print(f"timed out after {timeout_ms} ms: {url} ({error})", file=sys.stderr)
    return {"statusCode": 504,
            "body": {"success": False, "error": "timeout", "message": f"no answer from {url} within {timeout_ms} ms"}}
